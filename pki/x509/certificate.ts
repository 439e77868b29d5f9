/**
 * X.509 v3 certificates (RFC 5280): built with pkijs, signed by whatever Signer holds the issuer key.
 */
import { createHash, createPublicKey, verify } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { KeyUsageName } from '../../config/profile-types.js';
import type { HashName, KeyAlgorithm, Signer } from '../keys.js';
import { encodeGeneralNames, nameToText, toArrayBuffer } from './name.js';
import { ParsedCache, parsedCertificate } from './parsed.js';
import type { SubjectAltNames } from './types.js';

export type { SubjectAltNames } from './types.js';

export interface CertificateParams {
  /** Positive, big-endian. */
  serialNumber: Uint8Array;
  /** DER Name. */
  subject: Uint8Array;
  /** DER SubjectPublicKeyInfo. */
  subjectPublicKeyInfo: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  issuer: { kind: 'self'; signer: Signer } | { kind: 'ca'; certificate: Uint8Array; signer: Signer };
  /** Default SHA-256. */
  hash?: HashName;
  extensions: {
    /** Present: basicConstraints CA:TRUE. Absent: CA:FALSE. Critical either way. */
    ca?: { pathLength?: number };
    keyUsages: KeyUsageName[];
    /** Dotted OIDs. */
    extendedKeyUsages?: string[];
    subjectAltNames?: SubjectAltNames;
    /** URLs. */
    crlDistributionPoints?: string[];
    /** OCSP responder URLs (authorityInfoAccess id-ad-ocsp). */
    authorityInfoAccessOcsp?: string[];
    /** id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1): a delegated responder's own status is not checked. */
    ocspNoCheck?: boolean;
  };
}

/** Shared between the readers of one certificate (pki/x509/parsed.ts): frozen. */
export interface CertificateInfo {
  /** Lower-case hex of the serial's value, without a sign byte. */
  readonly serialHex: string;
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly sha256Hex: string;
  readonly subjectPublicKeyInfo: Uint8Array;
  readonly subjectKeyIdentifier?: Uint8Array;
  readonly isCa: boolean;
}

const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  subjectAltName: '2.5.29.17',
  crlDistributionPoints: '2.5.29.31',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  adOcsp: '1.3.6.1.5.5.7.48.1',
  ocspNoCheck: '1.3.6.1.5.5.7.48.1.5',
} as const;

const KEY_USAGE_BITS: Record<KeyUsageName, number> = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
};

const RSA_SIGNATURE_OIDS: Record<HashName, string> = {
  'SHA-1': '1.2.840.113549.1.1.5',
  'SHA-256': '1.2.840.113549.1.1.11',
  'SHA-384': '1.2.840.113549.1.1.12',
  'SHA-512': '1.2.840.113549.1.1.13',
};

const ECDSA_SIGNATURE_OIDS: Record<HashName, string> = {
  'SHA-1': '1.2.840.10045.4.1',
  'SHA-256': '1.2.840.10045.4.3.2',
  'SHA-384': '1.2.840.10045.4.3.3',
  'SHA-512': '1.2.840.10045.4.3.4',
};

const NODE_HASHES: Record<HashName, string> = {
  'SHA-1': 'sha1',
  'SHA-256': 'sha256',
  'SHA-384': 'sha384',
  'SHA-512': 'sha512',
};

/** RSA: sha*WithRSAEncryption with NULL parameters; ECDSA: ecdsa-with-SHA* with parameters absent (RFC 5758). */
export function signatureAlgorithm(keyAlgorithm: KeyAlgorithm, hash: HashName): pkijs.AlgorithmIdentifier {
  if (keyAlgorithm.startsWith('rsa-')) {
    return new pkijs.AlgorithmIdentifier({
      algorithmId: RSA_SIGNATURE_OIDS[hash],
      algorithmParams: new asn1js.Null(),
    });
  }
  return new pkijs.AlgorithmIdentifier({ algorithmId: ECDSA_SIGNATURE_OIDS[hash] });
}

export async function buildCertificate(p: CertificateParams): Promise<Uint8Array> {
  const hash = p.hash ?? 'SHA-256';
  const spki = pkijs.PublicKeyInfo.fromBER(p.subjectPublicKeyInfo);
  const subjectKeyId = subjectKeyIdentifier(p.subjectPublicKeyInfo);

  let issuerName: Uint8Array;
  let authorityKeyId: Uint8Array;
  let issuerSpki: Uint8Array;
  if (p.issuer.kind === 'self') {
    issuerName = p.subject;
    authorityKeyId = subjectKeyId;
    issuerSpki = p.subjectPublicKeyInfo;
  } else {
    const issuerCert = parsedCertificate(p.issuer.certificate);
    issuerName = rawSubject(p.issuer.certificate);
    const issuerSki = skiOf(issuerCert);
    if (!issuerSki)
      throw new Error('issuer certificate has no subjectKeyIdentifier to copy into authorityKeyIdentifier');
    authorityKeyId = issuerSki;
    issuerSpki = new Uint8Array(issuerCert.subjectPublicKeyInfo.toSchema().toBER());
  }

  const cert = new pkijs.Certificate();
  cert.version = 2;
  cert.serialNumber = serialInteger(p.serialNumber);
  cert.signature = signatureAlgorithm(p.issuer.signer.keyAlgorithm, hash);
  cert.issuer = pkijs.RelativeDistinguishedNames.fromBER(issuerName);
  cert.subject = pkijs.RelativeDistinguishedNames.fromBER(p.subject);
  cert.notBefore = certificateTime(p.notBefore);
  cert.notAfter = certificateTime(p.notAfter);
  cert.subjectPublicKeyInfo = spki;
  cert.extensions = extensions(p, subjectKeyId, authorityKeyId);

  const tbs = new Uint8Array(cert.encodeTBS().toBER());
  // toSchema() re-emits tbsView as is: the certificate carries exactly the bytes that were signed.
  cert.tbsView = tbs;
  const signature = await p.issuer.signer.sign(tbs, hash);
  cert.signatureAlgorithm = signatureAlgorithm(p.issuer.signer.keyAlgorithm, hash);
  cert.signatureValue = new asn1js.BitString({ valueHex: toArrayBuffer(signature) });

  // A signer whose key does not match the issuer certificate would yield a certificate nobody can
  // verify; refuse to hand it out.
  if (!signatureVerifies(hash, tbs, issuerSpki, signature)) {
    throw new Error('the issuer signer produced a signature that the issuer public key does not verify');
  }
  return new Uint8Array(cert.toSchema().toBER());
}

const infos = new ParsedCache<CertificateInfo>();

/** What the product reads of a certificate; computed once per DER and process (pki/x509/parsed.ts). */
export function certificateInfo(der: Uint8Array): CertificateInfo {
  return infos.get(der, readCertificateInfo);
}

function readCertificateInfo(der: Uint8Array): CertificateInfo {
  const cert = parsedCertificate(der);
  const subjectKeyId = skiOf(cert);
  const basicConstraints = extensionValue(cert, OID.basicConstraints);
  return Object.freeze({
    serialHex: unsignedHex(cert.serialNumber.valueBlock.valueHexView),
    subject: nameToText(new Uint8Array(cert.subject.toSchema().toBER())),
    issuer: nameToText(new Uint8Array(cert.issuer.toSchema().toBER())),
    notBefore: cert.notBefore.value,
    notAfter: cert.notAfter.value,
    sha256Hex: createHash('sha256').update(der).digest('hex'),
    subjectPublicKeyInfo: new Uint8Array(cert.subjectPublicKeyInfo.toSchema().toBER()),
    ...(subjectKeyId ? { subjectKeyIdentifier: subjectKeyId } : {}),
    isCa: basicConstraints
      ? new pkijs.BasicConstraints({ schema: asn1js.fromBER(toArrayBuffer(basicConstraints)).result }).cA
      : false,
  });
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value. */
export function subjectKeyIdentifier(spkiDer: Uint8Array): Uint8Array {
  const spki = pkijs.PublicKeyInfo.fromBER(spkiDer);
  return new Uint8Array(createHash('sha1').update(spki.subjectPublicKey.valueBlock.valueHexView).digest());
}

/** DER of the certificate's subject Name as it sits in the certificate. */
export function rawSubject(certificateDer: Uint8Array): Uint8Array {
  const cert = parsedCertificate(certificateDer);
  return new Uint8Array(cert.subject.toSchema().toBER());
}

function extensions(
  p: CertificateParams,
  subjectKeyId: Uint8Array,
  authorityKeyId: Uint8Array,
): pkijs.Extension[] {
  const ext = p.extensions;
  const list: pkijs.Extension[] = [
    extension(
      OID.basicConstraints,
      true,
      new pkijs.BasicConstraints(
        ext.ca
          ? { cA: true, ...(ext.ca.pathLength !== undefined ? { pathLenConstraint: ext.ca.pathLength } : {}) }
          : {},
      ),
    ),
  ];
  if (ext.keyUsages.length > 0) list.push(extension(OID.keyUsage, true, keyUsageBits(ext.keyUsages)));
  if (ext.extendedKeyUsages && ext.extendedKeyUsages.length > 0) {
    list.push(
      extension(OID.extKeyUsage, false, new pkijs.ExtKeyUsage({ keyPurposes: ext.extendedKeyUsages })),
    );
  }
  list.push(
    extension(
      OID.subjectKeyIdentifier,
      false,
      new asn1js.OctetString({ valueHex: toArrayBuffer(subjectKeyId) }),
    ),
  );
  list.push(
    extension(
      OID.authorityKeyIdentifier,
      false,
      new pkijs.AuthorityKeyIdentifier({
        keyIdentifier: new asn1js.OctetString({ valueHex: toArrayBuffer(authorityKeyId) }),
      }),
    ),
  );
  const altNames = ext.subjectAltNames ? encodeGeneralNames(ext.subjectAltNames) : [];
  if (altNames.length > 0) {
    // RFC 5280 4.2.1.6: with an empty subject the SAN carries the identity and must be critical.
    const emptySubject = pkijs.RelativeDistinguishedNames.fromBER(p.subject).typesAndValues.length === 0;
    list.push(extension(OID.subjectAltName, emptySubject, new pkijs.AltName({ altNames })));
  }
  if (ext.crlDistributionPoints && ext.crlDistributionPoints.length > 0) {
    list.push(
      extension(
        OID.crlDistributionPoints,
        false,
        new pkijs.CRLDistributionPoints({
          distributionPoints: ext.crlDistributionPoints.map(
            (url) =>
              new pkijs.DistributionPoint({
                distributionPoint: [new pkijs.GeneralName({ type: 6, value: url })],
              }),
          ),
        }),
      ),
    );
  }
  if (ext.authorityInfoAccessOcsp && ext.authorityInfoAccessOcsp.length > 0) {
    list.push(
      extension(
        OID.authorityInfoAccess,
        false,
        new pkijs.InfoAccess({
          accessDescriptions: ext.authorityInfoAccessOcsp.map(
            (url) =>
              new pkijs.AccessDescription({
                accessMethod: OID.adOcsp,
                accessLocation: new pkijs.GeneralName({ type: 6, value: url }),
              }),
          ),
        }),
      ),
    );
  }
  if (ext.ocspNoCheck) list.push(extension(OID.ocspNoCheck, false, new asn1js.Null()));
  return list;
}

function extension(
  extnID: string,
  critical: boolean,
  value: { toSchema(): asn1js.BaseBlock } | asn1js.BaseBlock,
): pkijs.Extension {
  const schema = value instanceof asn1js.BaseBlock ? value : value.toSchema();
  return new pkijs.Extension({ extnID, critical, extnValue: schema.toBER() });
}

/** DER BIT STRING: named bits with trailing zero bits dropped (X.690 11.2.2). */
function keyUsageBits(usages: KeyUsageName[]): asn1js.BitString {
  const bits = usages.map((u) => KEY_USAGE_BITS[u]);
  const highest = Math.max(...bits);
  const bytes = new Uint8Array(Math.floor(highest / 8) + 1);
  for (const bit of bits) bytes[Math.floor(bit / 8)]! |= 0x80 >> (bit % 8);
  return new asn1js.BitString({ valueHex: toArrayBuffer(bytes), unusedBits: 7 - (highest % 8) });
}

function serialInteger(serial: Uint8Array): asn1js.Integer {
  let start = 0;
  while (start < serial.length - 1 && serial[start] === 0) start++;
  const value = serial.subarray(start);
  if (value.length === 0 || (value.length === 1 && value[0] === 0)) {
    throw new Error('certificate serial number must be positive');
  }
  if (value.length > 20) throw new Error('certificate serial number exceeds 20 octets (RFC 5280 4.1.2.2)');
  const der = value[0]! & 0x80 ? Uint8Array.from([0, ...value]) : value;
  return new asn1js.Integer({ valueHex: toArrayBuffer(der) });
}

/** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime after; whole seconds only. */
function certificateTime(date: Date): pkijs.Time {
  const value = new Date(Math.floor(date.getTime() / 1000) * 1000);
  const year = value.getUTCFullYear();
  return new pkijs.Time({ type: year >= 1950 && year < 2050 ? 0 : 1, value });
}

function skiOf(cert: pkijs.Certificate): Uint8Array | undefined {
  const value = extensionValue(cert, OID.subjectKeyIdentifier);
  if (!value) return undefined;
  const parsed = asn1js.fromBER(toArrayBuffer(value));
  if (!(parsed.result instanceof asn1js.OctetString)) throw new Error('malformed subjectKeyIdentifier');
  return new Uint8Array(parsed.result.valueBlock.valueHexView);
}

function extensionValue(cert: pkijs.Certificate, oid: string): Uint8Array | undefined {
  const found = cert.extensions?.find((e) => e.extnID === oid);
  return found ? new Uint8Array(found.extnValue.valueBlock.valueHexView) : undefined;
}

function signatureVerifies(
  hash: HashName,
  data: Uint8Array,
  spkiDer: Uint8Array,
  signature: Uint8Array,
): boolean {
  try {
    const key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
    return verify(NODE_HASHES[hash], data, key, signature);
  } catch {
    // A signature of the wrong key type does not even parse.
    return false;
  }
}

function unsignedHex(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes).toString('hex');
  return hex.length > 2 && hex.startsWith('00') ? hex.slice(2) : hex;
}
