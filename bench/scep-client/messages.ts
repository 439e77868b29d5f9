/**
 * SCEP messages as a device writes and reads them (RFC 8894 3), for a load generator. The product's
 * codec (pki/scep/) serves the other side and re-parses every certificate it is handed, which costs a
 * few ms per message; here what repeats between requests is prepared once (the RA's key and
 * recipient id, each device's certificate) and a CertRep is read with one asn1js parse per layer, no
 * pkijs schema matching of the certificates it carries. The generator's CPU then stays small beside
 * the servers it measures, and out of the latencies.
 */
import { createDecipheriv, createHash, type KeyObject, verify, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { HashName } from '../../pki/keys.js';
import { attrOctets, attrString } from '../../pki/scep/decode.js';
import {
  derSorted,
  type EnvelopeRecipient,
  encodeEnvelope,
  envelopeRecipient,
} from '../../pki/scep/encode.js';
import { CMS, cipherByOid, DIGEST_BY_OID, DIGEST_OID_BY_NAME, SCEP_ATTR } from '../../pki/scep/oids.js';
import {
  type ContentCipher,
  FAIL_INFO_CODES,
  type FailInfo,
  MESSAGE_TYPE_CODES,
  type MessageTypeName,
} from '../../pki/scep/types.js';
import { signatureAlgorithm } from '../../pki/x509/certificate.js';
import { toArrayBuffer } from '../../pki/x509/name.js';
import type { DeviceKey } from './device.js';

/** What GetCACert gave, prepared for every request to that server. */
export interface RaPeer {
  /** Every certificate GetCACert returned (DER as received); the RA's is the first. */
  certificates: Uint8Array[];
  ra: Uint8Array;
  /** Requests are encrypted to it. */
  recipient: EnvelopeRecipient;
  /** The RA certificate's issuer, for CertPoll's IssuerAndSubject. */
  raIssuer: pkijs.RelativeDistinguishedNames;
  /** A CertRep must verify with one of these (the keys of the GetCACert certificates). */
  signerKeys: KeyObject[];
}

export function prepareRa(certificates: Uint8Array[]): RaPeer {
  const ra = certificates[0];
  if (!ra) throw new Error('GetCACert returned no certificate');
  const parsed = pkijs.Certificate.fromBER(toArrayBuffer(ra));
  return {
    certificates,
    ra,
    recipient: envelopeRecipient(ra),
    raIssuer: parsed.issuer,
    signerKeys: certificates.map((der) => new X509Certificate(der).publicKey),
  };
}

/** Certificates of a degenerate certs-only SignedData (RFC 8894 3.4), DER as sent; undefined if not one. */
export function certsOnlyCertificates(der: Uint8Array): Uint8Array[] | undefined {
  const signedData = contentOf(der, CMS.signedData);
  if (!signedData) return undefined;
  // SignedData: version, digestAlgorithms, encapContentInfo, [0] IMPLICIT certificates, [1] crls, signerInfos.
  const certificates = signedData.valueBlock.value.find(
    (b): b is asn1js.Constructed =>
      b instanceof asn1js.Constructed && b.idBlock.tagClass === 3 && b.idBlock.tagNumber === 0,
  );
  return (certificates?.valueBlock.value ?? []).map((b) => new Uint8Array(b.valueBeforeDecodeView));
}

export interface Request {
  messageType: MessageTypeName;
  transactionId: string;
  senderNonce: Uint8Array;
  /** The envelope's plaintext: a PKCS#10 request, an IssuerAndSubject. */
  content: Uint8Array;
  contentCipher: ContentCipher;
  digest: HashName;
}

/**
 * A pkiMessage: the content encrypted to the RA (RSAES-PKCS1-v1_5 key transport), inside a SignedData
 * signed by the device with contentType, signingTime, messageDigest, messageType, transactionID and
 * senderNonce, its certificate included.
 */
export async function encodeRequest(request: Request, ra: RaPeer, device: DeviceKey): Promise<Uint8Array> {
  const envelope = encodeEnvelope(request.content, ra.recipient, request.contentCipher);
  const digestOid = DIGEST_OID_BY_NAME[request.digest];
  const attribute = (type: string, value: asn1js.AsnType) => new pkijs.Attribute({ type, values: [value] });
  const printable = (value: string) => new asn1js.PrintableString({ value });
  const attributes = derSorted([
    attribute(CMS.contentType, new asn1js.ObjectIdentifier({ value: CMS.data })),
    attribute(CMS.signingTime, new asn1js.UTCTime({ valueDate: new Date() })),
    attribute(
      CMS.messageDigest,
      octets(createHash(DIGEST_BY_OID[digestOid]!.node).update(envelope).digest()),
    ),
    attribute(SCEP_ATTR.messageType, printable(String(MESSAGE_TYPE_CODES[request.messageType]))),
    attribute(SCEP_ATTR.transactionID, printable(request.transactionId)),
    attribute(SCEP_ATTR.senderNonce, octets(request.senderNonce)),
  ]);
  // The signature covers the attributes as a DER SET OF (RFC 5652 5.4).
  const signedSet = new asn1js.Set({ value: attributes.map((a) => a.toSchema()) }).toBER();
  const signature = await device.signer.sign(new Uint8Array(signedSet), request.digest);
  const digestAlgorithm = new pkijs.AlgorithmIdentifier({ algorithmId: digestOid });
  const signerInfo = new pkijs.SignerInfo({
    version: 1,
    sid: device.issuerAndSerial,
    digestAlgorithm,
    signedAttrs: new pkijs.SignedAndUnsignedAttributes({ type: 0, attributes }),
    signatureAlgorithm: signatureAlgorithm(device.signer.keyAlgorithm, request.digest),
    signature: octets(signature),
  });
  const signedData = new asn1js.Sequence({
    value: [
      new asn1js.Integer({ value: 1 }),
      new asn1js.Set({ value: [digestAlgorithm.toSchema()] }),
      new asn1js.Sequence({
        value: [new asn1js.ObjectIdentifier({ value: CMS.data }), explicit(0, octets(envelope))],
      }),
      // [0] IMPLICIT certificates: the device's, parsed once when its key was made.
      new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: [device.certificateBlock] }),
      new asn1js.Set({ value: [signerInfo.toSchema()] }),
    ],
  });
  return contentInfo(CMS.signedData, signedData);
}

/** A CertRep as the device reads it; a SUCCESS carries its envelope's certificates, DER as sent. */
export type CertRepReading = {
  transactionId: string;
  recipientNonce: Uint8Array | undefined;
} & (
  | { status: 'SUCCESS'; certificates: Uint8Array[] }
  /** failInfo undefined: absent, or a code RFC 8894 does not define. */
  | { status: 'FAILURE'; failInfo: FailInfo | undefined }
  | { status: 'PENDING' }
);

/**
 * Reads a CertRep: its signature must verify with a GetCACert key, over a messageDigest that matches
 * the content; a SUCCESS envelope is opened with the device's key. Throws on anything else (the
 * client turns that into an ERROR result).
 */
export async function decodeCertRep(
  body: Uint8Array,
  ra: RaPeer,
  device: DeviceKey,
): Promise<CertRepReading> {
  const signedData = contentOf(body, CMS.signedData);
  if (!signedData) throw new Error('CertRep is not a CMS SignedData');
  const items = signedData.valueBlock.value;
  const signerInfos = items[items.length - 1];
  if (!(signerInfos instanceof asn1js.Set) || signerInfos.valueBlock.value.length !== 1)
    throw new Error('CertRep must have exactly one signer');
  const si = new pkijs.SignerInfo({ schema: signerInfos.valueBlock.value[0] });
  const attrs = si.signedAttrs?.attributes;
  if (!si.signedAttrs || !attrs) throw new Error('CertRep has no signed attributes');

  // encapContentInfo: eContentType, [0] EXPLICIT OCTET STRING (empty for FAILURE and PENDING).
  const encap = items[2];
  const eContent = encap instanceof asn1js.Sequence ? encap.valueBlock.value[1] : undefined;
  const octetString = eContent instanceof asn1js.Constructed ? eContent.valueBlock.value[0] : undefined;
  const content =
    octetString instanceof asn1js.OctetString ? new Uint8Array(octetString.getValue()) : new Uint8Array();
  const digest = DIGEST_BY_OID[si.digestAlgorithm.algorithmId];
  if (!digest) throw new Error(`unsupported CertRep digest ${si.digestAlgorithm.algorithmId}`);
  const messageDigest = attrOctets(attrs, CMS.messageDigest);
  if (!messageDigest || !createHash(digest.node).update(content).digest().equals(messageDigest))
    throw new Error('CertRep messageDigest does not match its content');
  const signedSet = new Uint8Array(si.signedAttrs.encodedValue.slice(0));
  signedSet[0] = 0x31; // [0] IMPLICIT -> SET OF, as it was signed
  const signature = new Uint8Array(si.signature.valueBlock.valueHexView);
  if (!ra.signerKeys.some((key) => verify(digest.node, signedSet, key, signature)))
    throw new Error('CertRep signature does not verify with a GetCACert certificate');
  if (attrString(attrs, SCEP_ATTR.messageType) !== String(MESSAGE_TYPE_CODES.CertRep))
    throw new Error('pkiMessage is not a CertRep');
  const transactionId = attrString(attrs, SCEP_ATTR.transactionID);
  if (!transactionId) throw new Error('CertRep has no transactionID');
  const common = { transactionId, recipientNonce: attrOctets(attrs, SCEP_ATTR.recipientNonce) };

  const status = attrString(attrs, SCEP_ATTR.pkiStatus);
  switch (status) {
    case '0': {
      const certificates = certsOnlyCertificates(await openEnvelope(content, device));
      if (!certificates) throw new Error('SUCCESS envelope does not hold a certs-only SignedData');
      return { ...common, status: 'SUCCESS', certificates };
    }
    case '2': {
      const code = attrString(attrs, SCEP_ATTR.failInfo);
      const names = Object.keys(FAIL_INFO_CODES) as FailInfo[];
      return {
        ...common,
        status: 'FAILURE',
        failInfo: names.find((n) => String(FAIL_INFO_CODES[n]) === code),
      };
    }
    case '3':
      return { ...common, status: 'PENDING' };
    default:
      throw new Error(`CertRep has an unknown pkiStatus ${status ?? '(none)'}`);
  }
}

async function openEnvelope(content: Uint8Array, device: DeviceKey): Promise<Uint8Array> {
  const schema = contentOf(content, CMS.envelopedData);
  if (!schema) throw new Error('SUCCESS CertRep has no pkcsPKIEnvelope');
  const enveloped = new pkijs.EnvelopedData({ schema });
  const ours = enveloped.recipientInfos
    .map((ri) => ri.value)
    .find(
      (ktri): ktri is pkijs.KeyTransRecipientInfo =>
        ktri instanceof pkijs.KeyTransRecipientInfo &&
        ktri.rid instanceof pkijs.IssuerAndSerialNumber &&
        Buffer.from(ktri.rid.toSchema().toBER()).equals(device.issuerAndSerialDer),
    );
  if (!ours) throw new Error('CertRep envelope is not encrypted to the device certificate');
  const eci = enveloped.encryptedContentInfo;
  const cipher = cipherByOid(eci.contentEncryptionAlgorithm.algorithmId);
  if (!cipher) throw new Error(`unsupported CertRep cipher ${eci.contentEncryptionAlgorithm.algorithmId}`);
  const iv: unknown = eci.contentEncryptionAlgorithm.algorithmParams;
  if (!(iv instanceof asn1js.OctetString)) throw new Error('CertRep cipher has no IV');
  const cek = await device.decrypter.decrypt(new Uint8Array(ours.encryptedKey.valueBlock.valueHexView));
  const decipher = createDecipheriv(cipher, cek, new Uint8Array(iv.valueBlock.valueHexView));
  return new Uint8Array(
    Buffer.concat([decipher.update(new Uint8Array(eci.getEncryptedContent())), decipher.final()]),
  );
}

/** CertPoll content (RFC 8894 3.3.3): the RA certificate's issuer and the requested subject (DER Name). */
export function issuerAndSubject(ra: RaPeer, subject: Uint8Array): Uint8Array {
  const subjectBlock = asn1js.fromBER(toArrayBuffer(subject)).result;
  return new Uint8Array(new asn1js.Sequence({ value: [ra.raIssuer.toSchema(), subjectBlock] }).toBER());
}

/** The content of a ContentInfo of `type`, when `der` is one. */
function contentOf(der: Uint8Array, type: string): asn1js.Sequence | undefined {
  const parsed = asn1js.fromBER(toArrayBuffer(der));
  if (parsed.offset === -1 || !(parsed.result instanceof asn1js.Sequence)) return undefined;
  const [oid, wrapped] = parsed.result.valueBlock.value;
  if (!(oid instanceof asn1js.ObjectIdentifier) || oid.valueBlock.toString() !== type) return undefined;
  const inner = wrapped instanceof asn1js.Constructed ? wrapped.valueBlock.value[0] : undefined;
  return inner instanceof asn1js.Sequence ? inner : undefined;
}

function contentInfo(type: string, content: asn1js.AsnType): Uint8Array {
  return new Uint8Array(
    new asn1js.Sequence({
      value: [new asn1js.ObjectIdentifier({ value: type }), explicit(0, content)],
    }).toBER(),
  );
}

const explicit = (tagNumber: number, value: asn1js.AsnType) =>
  new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber }, value: [value] });

const octets = (bytes: Uint8Array) => new asn1js.OctetString({ valueHex: toArrayBuffer(bytes) });
