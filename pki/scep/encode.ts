/**
 * Builds SCEP responses (RFC 8894 section 3.3): degenerate certs-only SignedData, and the CertRep
 * pkiMessage signed by the RA (key in the HSM, reached through a Signer).
 */
import {
  createCipheriv,
  createHash,
  type KeyObject,
  publicEncrypt,
  randomBytes,
  X509Certificate,
} from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { HashName, Signer } from '../keys.js';
import { parsedCertificate } from '../x509/parsed.js';
import { CIPHER_SPECS, CMS, DIGEST_OID_BY_NAME, ECDSA, RSA, SCEP_ATTR } from './oids.js';
import type { CertRep, ContentCipher } from './types.js';
import { FAIL_INFO_CODES, MESSAGE_TYPE_CODES } from './types.js';

/** Degenerate SignedData (no signers): how SCEP ships certificates and CRLs (RFC 8894 3.4). */
export function encodeCertsOnly(certificates: Uint8Array[], crls?: Uint8Array[]): Uint8Array {
  const signedData = new pkijs.SignedData({
    version: 1,
    digestAlgorithms: [],
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: CMS.data }),
    certificates: certificates.map(parsedCertificate),
    signerInfos: [],
  });
  if (crls && crls.length > 0)
    signedData.crls = crls.map((der) => pkijs.CertificateRevocationList.fromBER(der));
  return contentInfoDer(CMS.signedData, signedData.toSchema(true));
}

const PKI_STATUS = { SUCCESS: '0', FAILURE: '2', PENDING: '3' } as const;

export interface RaSigner {
  /** DER of the RA certificate; goes into the SignedData so the client can verify. */
  certificate: Uint8Array;
  /**
   * The CA certificates above the RA (issuing CA first). Sent along so a client that trusts only
   * the root can build the RA's path: certmonger's OpenSSL verification fails without them.
   */
  chain?: Uint8Array[];
  signer: Signer;
}

export async function encodeCertRep(rep: CertRep, ra: RaSigner): Promise<Uint8Array> {
  // SHA-1 requests still get a SHA-256 answer: every client that does SHA-1 also verifies SHA-256.
  const digest: HashName = rep.digest === 'SHA-1' ? 'SHA-256' : rep.digest;

  // FAILURE and PENDING carry no pkcsPKIEnvelope (RFC 8894 3.3.2), but the eContent must still be
  // present as an empty OCTET STRING: certmonger (OpenSSL PKCS7_verify) rejects an absent one with
  // "no content". micromdm's server does the same.
  const content = rep.status === 'SUCCESS' ? envelopeFor(rep) : new Uint8Array();
  const scepAttrs: Array<[string, asn1js.AsnType]> = [
    [SCEP_ATTR.messageType, new asn1js.PrintableString({ value: String(MESSAGE_TYPE_CODES.CertRep) })],
    [SCEP_ATTR.pkiStatus, new asn1js.PrintableString({ value: PKI_STATUS[rep.status] })],
    [SCEP_ATTR.transactionID, new asn1js.PrintableString({ value: rep.transactionId })],
    [SCEP_ATTR.senderNonce, octets(randomBytes(16))],
    [SCEP_ATTR.recipientNonce, octets(rep.recipientNonce)],
  ];
  if (rep.status === 'FAILURE') {
    scepAttrs.push([
      SCEP_ATTR.failInfo,
      new asn1js.PrintableString({ value: String(FAIL_INFO_CODES[rep.failInfo]) }),
    ]);
  }
  return signedByRa(content, scepAttrs, ra, digest);
}

/**
 * SignedData over `content`, signed by the RA in the HSM: contentType, signingTime and messageDigest
 * plus the given SCEP attributes, DER-sorted as a SET OF must be (Go clients re-encode and check),
 * the RA certificate and its chain included.
 */
async function signedByRa(
  content: Uint8Array,
  scepAttributes: Array<[string, asn1js.AsnType]>,
  ra: RaSigner,
  digest: HashName,
): Promise<Uint8Array> {
  const nodeHash = digest.replace('-', '').toLowerCase();
  const cmsAttrs: Array<[string, asn1js.AsnType]> = [
    [CMS.contentType, new asn1js.ObjectIdentifier({ value: CMS.data })],
    [CMS.signingTime, new asn1js.UTCTime({ valueDate: new Date() })],
    [CMS.messageDigest, octets(createHash(nodeHash).update(content).digest())],
  ];
  const attributes = derSorted(
    [...cmsAttrs, ...scepAttributes].map(([type, value]) => new pkijs.Attribute({ type, values: [value] })),
  );

  // The signature covers the attributes encoded as a SET OF (RFC 5652 5.4), in DER order.
  const setDer = new Uint8Array(new asn1js.Set({ value: attributes.map((a) => a.toSchema()) }).toBER(false));
  const signature = await ra.signer.sign(setDer, digest);

  const raCert = parsedCertificate(ra.certificate);
  const digestAlgorithm = new pkijs.AlgorithmIdentifier({ algorithmId: DIGEST_OID_BY_NAME[digest] });
  const signerInfo = new pkijs.SignerInfo({
    version: 1,
    sid: issuerAndSerialOf(raCert),
    digestAlgorithm,
    signedAttrs: new pkijs.SignedAndUnsignedAttributes({ type: 0, attributes }),
    signatureAlgorithm: signatureAlgorithm(ra.signer, digest),
    signature: octets(signature),
  });
  const signedData = new pkijs.SignedData({
    version: 1,
    digestAlgorithms: [digestAlgorithm],
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: CMS.data }),
    certificates: [raCert, ...(ra.chain ?? []).map(parsedCertificate)],
    signerInfos: [signerInfo],
  });
  const schema = signedData.toSchema(true);
  // The EncapsulatedContentInfo is written by hand: pkijs drops an empty eContent and chunks a
  // non-empty one into a constructed (BER) OCTET STRING; we want one primitive OCTET STRING always.
  schema.valueBlock.value[2] = new asn1js.Sequence({
    value: [
      new asn1js.ObjectIdentifier({ value: CMS.data }),
      new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: [octets(content)] }),
    ],
  });
  return contentInfoDer(CMS.signedData, schema);
}

/** pkcsPKIEnvelope of a SUCCESS: the certs-only content encrypted to the device's signer certificate. */
function envelopeFor(rep: Extract<CertRep, { status: 'SUCCESS' }>): Uint8Array {
  const plaintext =
    rep.content.kind === 'certificates'
      ? encodeCertsOnly(rep.content.certificates)
      : encodeCertsOnly([], [rep.content.crl]);
  return encodeEnvelope(plaintext, envelopeRecipient(rep.recipientCertificate), rep.contentCipher);
}

/** Whom a pkcsPKIEnvelope is encrypted to: a certificate's RSA key and its issuer and serial. */
export interface EnvelopeRecipient {
  publicKey: KeyObject;
  id: pkijs.IssuerAndSerialNumber;
}

export function envelopeRecipient(certificateDer: Uint8Array): EnvelopeRecipient {
  return {
    publicKey: new X509Certificate(certificateDer).publicKey,
    id: issuerAndSerialOf(parsedCertificate(certificateDer)),
  };
}

/**
 * EnvelopedData of `plaintext` for one recipient: a fresh content key under `cipher`, transported
 * with RSAES-PKCS1-v1_5 (a CertRep's envelope; a device's request to the RA is built the same way).
 */
export function encodeEnvelope(
  plaintext: Uint8Array,
  recipient: EnvelopeRecipient,
  cipher: ContentCipher,
): Uint8Array {
  const spec = CIPHER_SPECS[cipher];
  const cek = randomBytes(spec.keyLength);
  const iv = randomBytes(spec.ivLength);
  const encipher = createCipheriv(cipher, cek, iv);
  const ciphertext = Buffer.concat([encipher.update(plaintext), encipher.final()]);

  // SCEP key transport is RSAES-PKCS1-v1_5 with rsaEncryption (pkijs only builds OAEP recipients).
  const encryptedKey = publicEncrypt({ key: recipient.publicKey, padding: 1 /* RSA_PKCS1_PADDING */ }, cek);
  const ktri = new pkijs.KeyTransRecipientInfo({
    version: 0,
    rid: recipient.id,
    keyEncryptionAlgorithm: new pkijs.AlgorithmIdentifier({
      algorithmId: RSA.rsaEncryption,
      algorithmParams: new asn1js.Null(),
    }),
    encryptedKey: octets(encryptedKey),
  });
  const enveloped = new pkijs.EnvelopedData({
    version: 0,
    recipientInfos: [new pkijs.RecipientInfo({ variant: 1, value: ktri })],
    encryptedContentInfo: new pkijs.EncryptedContentInfo({
      contentType: CMS.data,
      contentEncryptionAlgorithm: new pkijs.AlgorithmIdentifier({
        algorithmId: spec.oid,
        algorithmParams: octets(iv),
      }),
      encryptedContent: octets(ciphertext),
      // DER, not chunked BER: some clients do not reassemble constructed OCTET STRINGs.
      disableSplit: true,
    }),
  });
  return contentInfoDer(CMS.envelopedData, enveloped.toSchema());
}

function signatureAlgorithm(signer: Signer, digest: HashName): pkijs.AlgorithmIdentifier {
  if (signer.keyAlgorithm.startsWith('rsa')) {
    // rsaEncryption with NULL, as OpenSSL writes it: understood by every client we know.
    return new pkijs.AlgorithmIdentifier({
      algorithmId: RSA.rsaEncryption,
      algorithmParams: new asn1js.Null(),
    });
  }
  const ecdsa = {
    'SHA-1': undefined,
    'SHA-256': ECDSA.withSHA256,
    'SHA-384': ECDSA.withSHA384,
    'SHA-512': ECDSA.withSHA512,
  };
  const algorithmId = ecdsa[digest];
  if (!algorithmId) throw new Error(`no ECDSA signature algorithm for ${digest}`);
  return new pkijs.AlgorithmIdentifier({ algorithmId });
}

/** Sorts attributes by their DER encoding, as X.690 11.6 requires for a SET OF. */
export function derSorted(attributes: pkijs.Attribute[]): pkijs.Attribute[] {
  const encoded = attributes.map((attr) => ({ attr, der: Buffer.from(attr.toSchema().toBER(false)) }));
  // Shorter encodings compare as if padded with trailing zero octets.
  encoded.sort((a, b) => {
    const length = Math.max(a.der.length, b.der.length);
    return Buffer.concat([a.der, Buffer.alloc(length - a.der.length)]).compare(
      Buffer.concat([b.der, Buffer.alloc(length - b.der.length)]),
    );
  });
  return encoded.map((e) => e.attr);
}

function issuerAndSerialOf(cert: pkijs.Certificate): pkijs.IssuerAndSerialNumber {
  return new pkijs.IssuerAndSerialNumber({ issuer: cert.issuer, serialNumber: cert.serialNumber });
}

function octets(bytes: Uint8Array): asn1js.OctetString {
  return new asn1js.OctetString({ valueHex: bytes });
}

function contentInfoDer(contentType: string, content: asn1js.AsnType): Uint8Array {
  return new Uint8Array(new pkijs.ContentInfo({ contentType, content }).toSchema().toBER(false));
}

/**
 * GetNextCACert answer (RFC 8894 4.7.1): a SignedData whose content is the degenerate certs-only
 * SignedData holding the next CA certificate(s), signed by the RA like a CertRep (contentType,
 * signingTime and messageDigest signed attributes, in DER order).
 */
export async function encodeSignedCertsOnly(
  certificates: Uint8Array[],
  ra: RaSigner,
  digest: HashName = 'SHA-256',
): Promise<Uint8Array> {
  return signedByRa(encodeCertsOnly(certificates), [], ra, digest);
}
