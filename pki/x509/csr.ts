/**
 * PKCS#10 requests as devices send them. Reads what policy needs and never throws: a CSR comes from
 * the network, and garbage must become a clear refusal, not a crash.
 */
import { constants, createPublicKey, type KeyObject, verify } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { decodeGeneralNames, nameToText, stringValue, toArrayBuffer } from './name.js';
import { emptySubjectAltNames, type SubjectAltNames } from './types.js';

export type CsrPublicKey =
  | { algorithm: 'rsa'; bits: number }
  | { algorithm: 'ec'; curve: 'P-256' | 'P-384' | 'P-521' | string }
  | { algorithm: 'other'; oid: string };

export interface CsrInfo {
  der: Uint8Array;
  /** DER Name, as the CSR carries it. */
  subject: Uint8Array;
  subjectText: string;
  commonName?: string;
  publicKey: CsrPublicKey;
  subjectPublicKeyInfo: Uint8Array;
  challengePassword?: string;
  /** Subject attributes in DER order (multi-valued RDNs flattened), by OID; non-text values skipped. */
  subjectAttributes: Array<{ type: string; value: string }>;
  subjectAltNames: SubjectAltNames;
  /** The extension request asks for basicConstraints cA TRUE. */
  requestsCa: boolean;
  signatureValid: boolean;
}

export type CsrParseResult = { ok: true; csr: CsrInfo } | { ok: false; message: string };

const OID = {
  rsaEncryption: '1.2.840.113549.1.1.1',
  rsassaPss: '1.2.840.113549.1.1.10',
  ecPublicKey: '1.2.840.10045.2.1',
  ed25519: '1.3.101.112',
  commonName: '2.5.4.3',
  challengePassword: '1.2.840.113549.1.9.7',
  extensionRequest: '1.2.840.113549.1.9.14',
  // Older Windows clients put the requested extensions under Microsoft's own attribute.
  msCertExtensions: '1.3.6.1.4.1.311.2.1.14',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
} as const;

const CURVE_NAMES: Record<string, string> = {
  '1.2.840.10045.3.1.7': 'P-256',
  '1.3.132.0.34': 'P-384',
  '1.3.132.0.35': 'P-521',
};

const SIGNATURE_HASHES: Record<string, string> = {
  '1.2.840.113549.1.1.5': 'sha1',
  '1.2.840.113549.1.1.14': 'sha224',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.1': 'sha1',
  '1.2.840.10045.4.3.1': 'sha224',
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
};

const HASH_OIDS: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.4': 'sha224',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

export async function parseCsr(der: Uint8Array): Promise<CsrParseResult> {
  try {
    return { ok: true, csr: readCsr(der) };
  } catch (e) {
    return {
      ok: false,
      message: `not a valid PKCS#10 request: ${e instanceof Error ? e.message : String(e)}`,
    };
  }
}

function readCsr(der: Uint8Array): CsrInfo {
  const parsed = asn1js.fromBER(toArrayBuffer(der));
  if (parsed.offset === -1) throw new Error(parsed.result.error || 'malformed DER');
  if (parsed.offset !== der.length) throw new Error('trailing bytes after the request');
  const csr = new pkijs.CertificationRequest({ schema: parsed.result });

  const subject = new Uint8Array(csr.subject.toSchema().toBER());
  const spki = new Uint8Array(csr.subjectPublicKeyInfo.toSchema().toBER());
  const commonName = csr.subject.typesAndValues.find((tv) => tv.type === OID.commonName);
  const challenge = attributeValues(csr, OID.challengePassword)[0];
  const challengePassword = challenge === undefined ? undefined : stringValue(challenge);
  if (challenge !== undefined && challengePassword === undefined) {
    throw new Error('challengePassword is not a character string');
  }
  const commonNameText = commonName ? stringValue(commonName.value) : undefined;

  return {
    der: new Uint8Array(der),
    subject,
    subjectText: nameToText(subject),
    ...(commonNameText !== undefined ? { commonName: commonNameText } : {}),
    publicKey: publicKeyOf(csr.subjectPublicKeyInfo),
    subjectPublicKeyInfo: spki,
    ...(challengePassword !== undefined ? { challengePassword } : {}),
    subjectAttributes: csr.subject.typesAndValues.flatMap((tv) => {
      const value = stringValue(tv.value);
      return value === undefined ? [] : [{ type: tv.type, value }];
    }),
    subjectAltNames: requestedAltNames(csr),
    requestsCa: requestedExtensions(csr).some(
      (e) =>
        e.extnID === OID.basicConstraints &&
        pkijs.BasicConstraints.fromBER(e.extnValue.valueBlock.valueHexView).cA === true,
    ),
    signatureValid: signatureValid(csr, spki),
  };
}

function attributeValues(csr: pkijs.CertificationRequest, oid: string): unknown[] {
  return (csr.attributes ?? []).filter((a) => a.type === oid).flatMap((a) => a.values);
}

/** Extensions of the extension request (and of Microsoft's older attribute for it). */
function requestedExtensions(csr: pkijs.CertificationRequest): pkijs.Extension[] {
  return [
    ...attributeValues(csr, OID.extensionRequest),
    ...attributeValues(csr, OID.msCertExtensions),
  ].flatMap((value) => new pkijs.Extensions({ schema: value }).extensions);
}

function requestedAltNames(csr: pkijs.CertificationRequest): SubjectAltNames {
  const san = requestedExtensions(csr).find((e) => e.extnID === OID.subjectAltName);
  if (!san) return emptySubjectAltNames();
  return decodeGeneralNames(pkijs.AltName.fromBER(san.extnValue.valueBlock.valueHexView).altNames);
}

function publicKeyOf(spki: pkijs.PublicKeyInfo): CsrPublicKey {
  const oid = spki.algorithm.algorithmId;
  if (oid === OID.rsaEncryption) {
    const rsa = pkijs.RSAPublicKey.fromBER(spki.subjectPublicKey.valueBlock.valueHexView);
    return { algorithm: 'rsa', bits: bitLength(rsa.modulus.valueBlock.valueHexView) };
  }
  if (oid === OID.ecPublicKey) {
    const params = spki.algorithm.algorithmParams;
    if (!(params instanceof asn1js.ObjectIdentifier)) throw new Error('EC key without a named curve');
    const curveOid = params.valueBlock.toString();
    return { algorithm: 'ec', curve: CURVE_NAMES[curveOid] ?? curveOid };
  }
  return { algorithm: 'other', oid };
}

function bitLength(unsigned: Uint8Array): number {
  let i = 0;
  while (i < unsigned.length && unsigned[i] === 0) i++;
  if (i === unsigned.length) return 0;
  return (unsigned.length - i - 1) * 8 + (32 - Math.clz32(unsigned[i]!));
}

/** Checked with node:crypto (sync, no WebCrypto engine needed); unknown algorithms count as invalid. */
function signatureValid(csr: pkijs.CertificationRequest, spki: Uint8Array): boolean {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch {
    return false;
  }
  const tbs = csr.tbsView;
  const signature = csr.signatureValue.valueBlock.valueHexView;
  const oid = csr.signatureAlgorithm.algorithmId;
  try {
    const hash = SIGNATURE_HASHES[oid];
    if (hash) return verify(hash, tbs, key, signature);
    if (oid === OID.ed25519) return verify(null, tbs, key, signature);
    if (oid === OID.rsassaPss) {
      const pss = pssParameters(csr.signatureAlgorithm.algorithmParams);
      if (!pss) return false;
      return verify(
        pss.hash,
        tbs,
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: pss.saltLength },
        signature,
      );
    }
    return false;
  } catch {
    return false;
  }
}

/** node:crypto uses MGF1 with the message hash; other MGF hashes are rejected as unverifiable. */
function pssParameters(params: unknown): { hash: string; saltLength: number } | undefined {
  const pss = new pkijs.RSASSAPSSParams(params ? { schema: params } : {});
  const hash = HASH_OIDS[pss.hashAlgorithm.algorithmId];
  const mgfHashParams = pss.maskGenAlgorithm.algorithmParams;
  const mgfHash = mgfHashParams
    ? HASH_OIDS[new pkijs.AlgorithmIdentifier({ schema: mgfHashParams }).algorithmId]
    : 'sha1';
  if (!hash || hash !== mgfHash) return undefined;
  return { hash, saltLength: pss.saltLength };
}
