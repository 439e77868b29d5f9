/**
 * Decodes a SCEP pkiMessage (RFC 8894 section 3): CMS SignedData around an EnvelopedData encrypted to
 * the RA. Never throws: every failure becomes a ScepDecodeError that says how to answer the device.
 */
import { createDecipheriv, createHash, verify, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { KeyTransportDecrypter } from '../keys.js';
import { parsedCertificate } from '../x509/parsed.js';
import { CIPHER_SPECS, CMS, cipherByOid, DIGEST_BY_OID, SCEP_ATTR } from './oids.js';
import type {
  ContentCipher,
  FailInfo,
  MessageTypeName,
  RequestEnvelope,
  ScepDecodeError,
  ScepDecodeResult,
  ScepRequest,
} from './types.js';
import { MESSAGE_TYPE_CODES } from './types.js';

export interface RaKeys {
  /** DER of every RA certificate GetCACert hands out (clients may encrypt to any of them). */
  certificates: Uint8Array[];
  decrypter: KeyTransportDecrypter;
}

/** Thrown inside the decoder only; decodePkiMessage turns it into a result. */
class DecodeFailure extends Error {
  constructor(readonly error: ScepDecodeError) {
    super(error.message);
  }
}

const http400 = (message: string): never => {
  throw new DecodeFailure({ reply: 'http-400', message });
};

export async function decodePkiMessage(body: Uint8Array, ra: RaKeys): Promise<ScepDecodeResult> {
  try {
    return { ok: true, request: await decode(body, ra) };
  } catch (err) {
    if (err instanceof DecodeFailure) return { ok: false, error: err.error };
    // A parser threw something we did not anticipate: treat as unreadable input, not as a crash.
    return { ok: false, error: { reply: 'http-400', message: `malformed pkiMessage: ${errorText(err)}` } };
  }
}

async function decode(body: Uint8Array, ra: RaKeys): Promise<ScepRequest> {
  if (body.length === 0) http400('empty pkiMessage');
  const signedData = parseSignedData(body);
  const signerInfo = signedData.signerInfos[0];
  if (signedData.signerInfos.length !== 1 || !signerInfo) http400('pkiMessage must have exactly one signer');
  const si = signerInfo as pkijs.SignerInfo;
  const attrs = si.signedAttrs?.attributes;
  if (!attrs || !si.signedAttrs) return http400('pkiMessage has no signed attributes');

  const transactionId = attrString(attrs, SCEP_ATTR.transactionID);
  if (!transactionId) http400('pkiMessage has no transactionID');
  const senderNonce = attrOctets(attrs, SCEP_ATTR.senderNonce);
  if (!senderNonce || senderNonce.length === 0) http400('pkiMessage has no senderNonce');
  const signerCertificate = findSignerCertificate(signedData, si);
  if (!signerCertificate) http400('signer certificate not found in pkiMessage');
  const digestInfo = DIGEST_BY_OID[si.digestAlgorithm.algorithmId];

  // From here on we know who asked: failures are answered with a signed CertRep FAILURE.
  const envelope = {
    transactionId: transactionId as string,
    senderNonce: senderNonce as Uint8Array,
    signerCertificate: signerCertificate as Uint8Array,
    digest: digestInfo?.name ?? 'SHA-256',
  } satisfies Omit<RequestEnvelope, 'contentCipher'>;
  const fail = (failInfo: FailInfo, message: string): never => {
    throw new DecodeFailure({ reply: 'certrep-failure', failInfo, message, ...envelope });
  };

  if (!digestInfo) fail('badAlg', `unsupported digest algorithm ${si.digestAlgorithm.algorithmId}`);
  const content = encapsulatedContent(signedData);
  if (
    !verifySignerInfo(
      si,
      signedAttrsDer(si.signedAttrs),
      content,
      envelope.signerCertificate,
      digestInfo!.node,
    )
  ) {
    fail('badMessageCheck', 'pkiMessage signature does not verify');
  }

  const messageType = messageTypeName(attrString(attrs, SCEP_ATTR.messageType));
  if (!messageType) return fail('badRequest', 'unknown or missing messageType');
  if (!content) return fail('badMessageCheck', 'pkiMessage has no pkcsPKIEnvelope');

  const { plaintext, contentCipher } = await openEnvelope(content, ra, fail);
  const request = { ...envelope, contentCipher };
  // The decrypted content is exactly one DER value: trailing bytes would travel on as part of the CSR.
  const inner = parseDer(plaintext, { whole: true });
  switch (messageType) {
    case 'PKCSReq':
    case 'RenewalReq':
      // The CSR is checked by policy code later; here it only has to be one DER SEQUENCE.
      if (!(inner instanceof asn1js.Sequence)) fail('badRequest', 'envelope does not hold a PKCS#10 request');
      return { ...request, messageType, csr: plaintext };
    case 'CertPoll': {
      const [issuer, subject] = inner instanceof asn1js.Sequence ? inner.valueBlock.value : [];
      if (!(issuer instanceof asn1js.Sequence) || !(subject instanceof asn1js.Sequence)) {
        return fail('badRequest', 'envelope does not hold an IssuerAndSubject');
      }
      return { ...request, messageType, issuer: derOf(issuer), subject: derOf(subject) };
    }
    case 'GetCert':
    case 'GetCRL': {
      if (!inner) return fail('badRequest', 'envelope does not hold an IssuerAndSerialNumber');
      let ias: pkijs.IssuerAndSerialNumber;
      try {
        ias = new pkijs.IssuerAndSerialNumber({ schema: inner });
      } catch {
        return fail('badRequest', 'envelope does not hold an IssuerAndSerialNumber');
      }
      const issuerAndSerial = {
        issuer: derOf(ias.issuer.toSchema()),
        serialNumber: unsignedSerial(ias.serialNumber),
      };
      return { ...request, messageType, issuerAndSerial };
    }
  }
}

/**
 * Decodes the `message` query parameter of a GET PKIOperation. The HTTP layer has removed the percent
 * encoding but also turned `+` into spaces (clients that do not escape `+`: macOS, Cisco), so spaces
 * are restored; line breaks are dropped; the URL-safe alphabet is accepted as well as the standard one.
 */
export function decodeGetMessageParam(value: string): Uint8Array | undefined {
  const text = value
    .replace(/ /g, '+')
    .replace(/[\r\n\t]/g, '')
    .replace(/-/g, '+')
    .replace(/_/g, '/');
  const unpadded = text.replace(/=+$/, '');
  if (unpadded.length === 0 || unpadded.length % 4 === 1 || !/^[A-Za-z0-9+/]*$/.test(unpadded))
    return undefined;
  if (text.length - unpadded.length > 2) return undefined;
  const bytes = Buffer.from(unpadded, 'base64');
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// ---------------------------------------------------------------------------------------------------
// Outer SignedData

function parseDer(der: Uint8Array, opts?: { whole: boolean }): asn1js.AsnType | undefined {
  // asn1js reports most errors in the result but throws on some malformed values (a GeneralizedTime
  // that is not a time, a BMPString of odd length): both mean "not DER" here.
  try {
    const parsed = asn1js.fromBER(der);
    if (parsed.offset === -1 || parsed.result.error) return undefined;
    if (opts?.whole && parsed.offset !== der.length) return undefined;
    return parsed.result;
  } catch {
    return undefined;
  }
}

function parseSignedData(body: Uint8Array): pkijs.SignedData {
  const root = parseDer(body);
  if (!root) return http400('pkiMessage is not valid DER');
  let contentInfo: pkijs.ContentInfo;
  try {
    contentInfo = new pkijs.ContentInfo({ schema: root });
  } catch {
    return http400('pkiMessage is not a CMS ContentInfo');
  }
  if (contentInfo.contentType !== CMS.signedData) http400('pkiMessage is not CMS SignedData');
  try {
    return new pkijs.SignedData({ schema: contentInfo.content });
  } catch {
    return http400('pkiMessage SignedData is malformed');
  }
}

/**
 * The eContent bytes; Go clients send a constructed OCTET STRING, so the pieces are concatenated.
 * pkijs takes eContent as ANY: another type (a NULL, say) is no content, not something to read as one.
 */
function encapsulatedContent(signedData: pkijs.SignedData): Uint8Array | undefined {
  const eContent: unknown = signedData.encapContentInfo.eContent;
  if (!(eContent instanceof asn1js.OctetString) || signedData.encapContentInfo.eContentType !== CMS.data)
    return undefined;
  return new Uint8Array(eContent.getValue());
}

/** The signed attributes as the signer signed them: the received bytes, re-tagged [0] -> SET (RFC 5652 5.4). */
function signedAttrsDer(attrs: pkijs.SignedAndUnsignedAttributes): Uint8Array {
  const bytes = new Uint8Array(attrs.encodedValue.slice(0));
  bytes[0] = 0x31;
  return bytes;
}

function verifySignerInfo(
  si: pkijs.SignerInfo,
  signedAttrs: Uint8Array,
  content: Uint8Array | undefined,
  signerCertificate: Uint8Array,
  nodeHash: string,
): boolean {
  try {
    const attrs = si.signedAttrs?.attributes ?? [];
    const messageDigest = attrOctets(attrs, CMS.messageDigest);
    const actual = createHash(nodeHash)
      .update(content ?? new Uint8Array())
      .digest();
    if (!messageDigest || !actual.equals(messageDigest)) return false;
    // The key decides RSA PKCS#1 v1.5 or ECDSA; the signatureAlgorithm OID may be plain rsaEncryption
    // (certmonger) or sha1WithRSAEncryption (micromdm): the DigestInfo inside the signature binds the hash.
    const key = new X509Certificate(signerCertificate).publicKey;
    return verify(nodeHash, signedAttrs, key, new Uint8Array(si.signature.valueBlock.valueHexView));
  } catch {
    return false;
  }
}

function findSignerCertificate(signedData: pkijs.SignedData, si: pkijs.SignerInfo): Uint8Array | undefined {
  const certs = (signedData.certificates ?? []).filter(
    (c): c is pkijs.Certificate => c instanceof pkijs.Certificate,
  );
  const sid: unknown = si.sid;
  const match =
    sid instanceof pkijs.IssuerAndSerialNumber
      ? certs.find((c) => sameIssuerAndSerial(c, sid))
      : certs.find((c) => sameSubjectKeyId(c, sid));
  return match ? derOf(match.toSchema()) : undefined;
}

function sameSubjectKeyId(cert: pkijs.Certificate, sid: unknown): boolean {
  // sid [0] IMPLICIT SubjectKeyIdentifier: pkijs keeps it as a raw constructed/primitive block.
  const inner = sid instanceof asn1js.Constructed ? sid.valueBlock.value[0] : sid;
  const keyId =
    inner instanceof asn1js.Primitive || inner instanceof asn1js.OctetString
      ? inner.valueBlock.valueHexView
      : undefined;
  const ext = cert.extensions?.find((e) => e.extnID === '2.5.29.14');
  const ski =
    ext?.parsedValue instanceof asn1js.OctetString ? ext.parsedValue.valueBlock.valueHexView : undefined;
  return !!keyId && !!ski && Buffer.from(keyId).equals(Buffer.from(ski));
}

export function sameIssuerAndSerial(cert: pkijs.Certificate, ias: pkijs.IssuerAndSerialNumber): boolean {
  return (
    Buffer.from(unsignedSerial(cert.serialNumber)).equals(Buffer.from(unsignedSerial(ias.serialNumber))) &&
    Buffer.from(derOf(cert.issuer.toSchema())).equals(Buffer.from(derOf(ias.issuer.toSchema())))
  );
}

/** Serial as unsigned big-endian bytes (the DER INTEGER may carry a leading 0x00). */
function unsignedSerial(serial: asn1js.Integer): Uint8Array {
  const bytes = serial.valueBlock.valueHexView;
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  return new Uint8Array(bytes.subarray(start));
}

function messageTypeName(text: string | undefined): MessageTypeName | undefined {
  if (!text || !/^\d+$/.test(text)) return undefined;
  const code = Number(text);
  const names: MessageTypeName[] = ['PKCSReq', 'RenewalReq', 'CertPoll', 'GetCert', 'GetCRL'];
  return names.find((name) => MESSAGE_TYPE_CODES[name] === code);
}

// ---------------------------------------------------------------------------------------------------
// Inner EnvelopedData (pkcsPKIEnvelope)

type Fail = (failInfo: FailInfo, message: string) => never;

async function openEnvelope(
  content: Uint8Array,
  ra: RaKeys,
  fail: Fail,
): Promise<{ plaintext: Uint8Array; contentCipher: ContentCipher }> {
  const root = parseDer(content);
  let enveloped: pkijs.EnvelopedData | undefined;
  try {
    const contentInfo = new pkijs.ContentInfo({ schema: root });
    if (contentInfo.contentType === CMS.envelopedData)
      enveloped = new pkijs.EnvelopedData({ schema: contentInfo.content });
  } catch {
    enveloped = undefined;
  }
  if (!enveloped) return fail('badMessageCheck', 'pkcsPKIEnvelope is not CMS EnvelopedData');

  const ourCerts = ra.certificates.flatMap((der) => {
    try {
      return [parsedCertificate(der)];
    } catch {
      return [];
    }
  });
  const recipient = enveloped.recipientInfos
    .map((ri) => ri.value)
    .find(
      (ktri): ktri is pkijs.KeyTransRecipientInfo =>
        ktri instanceof pkijs.KeyTransRecipientInfo &&
        ktri.rid instanceof pkijs.IssuerAndSerialNumber &&
        ourCerts.some((cert) => sameIssuerAndSerial(cert, ktri.rid as pkijs.IssuerAndSerialNumber)),
    );
  if (!recipient) return fail('badMessageCheck', 'pkcsPKIEnvelope is not encrypted to our RA certificate');
  if (recipient.keyEncryptionAlgorithm.algorithmId !== '1.2.840.113549.1.1.1') {
    fail('badAlg', `unsupported key transport ${recipient.keyEncryptionAlgorithm.algorithmId}`);
  }

  const eci = enveloped.encryptedContentInfo;
  const cipherOid = eci.contentEncryptionAlgorithm.algorithmId;
  const contentCipher = cipherByOid(cipherOid);
  if (!contentCipher) return fail('badAlg', `unsupported content cipher ${cipherOid}`);
  const spec = CIPHER_SPECS[contentCipher];
  const ivParam: unknown = eci.contentEncryptionAlgorithm.algorithmParams;
  const iv =
    ivParam instanceof asn1js.OctetString ? new Uint8Array(ivParam.valueBlock.valueHexView) : undefined;
  if (!iv || iv.length !== spec.ivLength)
    return fail('badMessageCheck', 'content cipher IV is missing or malformed');
  let ciphertext: Uint8Array;
  try {
    ciphertext = new Uint8Array(eci.getEncryptedContent());
  } catch {
    return fail('badMessageCheck', 'pkcsPKIEnvelope has no encrypted content');
  }

  let cek: Uint8Array;
  try {
    cek = await ra.decrypter.decrypt(new Uint8Array(recipient.encryptedKey.valueBlock.valueHexView));
  } catch {
    return fail('badMessageCheck', 'content-encryption key does not decrypt with the RA key');
  }
  if (cek.length !== spec.keyLength)
    fail('badMessageCheck', `content-encryption key has the wrong length for ${contentCipher}`);

  let decipher: ReturnType<typeof createDecipheriv>;
  try {
    decipher = createDecipheriv(contentCipher, cek, iv);
  } catch (err) {
    // Single DES lives in OpenSSL 3's legacy provider, which Node loads only with --openssl-legacy-provider.
    const hint = contentCipher === 'des-cbc' ? ' (needs NODE_OPTIONS=--openssl-legacy-provider)' : '';
    return fail('badAlg', `${contentCipher} is not available${hint}: ${errorText(err)}`);
  }
  try {
    const plaintext = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    return { plaintext: new Uint8Array(plaintext), contentCipher };
  } catch {
    return fail('badMessageCheck', 'pkcsPKIEnvelope does not decrypt (bad key or padding)');
  }
}

// ---------------------------------------------------------------------------------------------------
// Attribute helpers

function attrValue(attrs: pkijs.Attribute[], oid: string): unknown {
  const matching = attrs.filter((a) => a.type === oid);
  // A repeated or multi-valued SCEP attribute is ambiguous: treat it as absent. pkijs leaves `values`
  // undefined for an attribute whose SET of values is empty.
  const values: unknown = matching[0]?.values;
  if (matching.length !== 1 || !Array.isArray(values) || values.length !== 1) return undefined;
  return values[0];
}

/** SCEP text attributes are PrintableString; other string types are tolerated. */
export function attrString(attrs: pkijs.Attribute[], oid: string): string | undefined {
  const value = attrValue(attrs, oid);
  if (value instanceof asn1js.BaseStringBlock) return value.valueBlock.value || undefined;
  return undefined;
}

export function attrOctets(attrs: pkijs.Attribute[], oid: string): Uint8Array | undefined {
  const value = attrValue(attrs, oid);
  if (value instanceof asn1js.OctetString) return new Uint8Array(value.getValue());
  return undefined;
}

function derOf(schema: asn1js.AsnType): Uint8Array {
  return new Uint8Array(schema.toBER(false));
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
