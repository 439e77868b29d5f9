/**
 * X.509 v2 CRLs (RFC 5280 section 5): built with pkijs, signed by whatever Signer holds the CA key.
 */
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { Signer } from '../keys.js';
import { rawSubject, signatureAlgorithm } from './certificate.js';
import { toArrayBuffer } from './name.js';
import { hashForSigner, signTbs, wholeSeconds } from './signed-tbs.js';

/** RFC 5280 5.3.1 CRLReason names. */
export type RevocationReason =
  | 'unspecified'
  | 'keyCompromise'
  | 'affiliationChanged'
  | 'superseded'
  | 'cessationOfOperation'
  | 'certificateHold'
  | 'privilegeWithdrawn';

/** RFC 5280 5.3.1 CRLReason codes. */
export const REASON_CODES: Record<RevocationReason, number> = {
  unspecified: 0,
  keyCompromise: 1,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
};

/** A reason as stored in the database; anything unknown reads as unspecified. */
export function revocationReasonOf(stored: string | null): RevocationReason {
  return stored && Object.hasOwn(REASON_CODES, stored) ? (stored as RevocationReason) : 'unspecified';
}

const OID = {
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  cRLNumber: '2.5.29.20',
  reasonCode: '2.5.29.21',
} as const;

export interface CrlEntry {
  /** Lower-case hex of the serial's value, as certificateInfo().serialHex gives it. */
  serialHex: string;
  revokedAt: Date;
  reason: RevocationReason;
}

export interface CrlParams {
  /** DER of the CA certificate whose key signs the CRL. */
  issuerCertificate: Uint8Array;
  signer: Signer;
  crlNumber: number;
  thisUpdate: Date;
  nextUpdate: Date;
  entries: CrlEntry[];
}

export interface CrlInfo {
  crlNumber: number | undefined;
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  /** Lower-case hex serials listed, in CRL order. */
  serials: string[];
}

/**
 * A v2 CRL: the issuer Name copied from the CA certificate, authorityKeyIdentifier = the CA's
 * subjectKeyIdentifier, a cRLNumber, and a reasonCode per entry (omitted for unspecified, RFC 5280
 * 5.3.1). Pure: the signature comes from `signer`.
 */
export async function buildCrl(p: CrlParams): Promise<Uint8Array> {
  if (!Number.isSafeInteger(p.crlNumber) || p.crlNumber < 0) {
    throw new Error(`CRL number must be a non-negative integer, got ${p.crlNumber}`);
  }
  if (p.nextUpdate.getTime() <= p.thisUpdate.getTime())
    throw new Error('CRL nextUpdate must follow thisUpdate');
  const issuerCert = pkijs.Certificate.fromBER(p.issuerCertificate);
  const issuerSki = extensionValue(issuerCert, OID.subjectKeyIdentifier);
  if (!issuerSki) throw new Error('issuer certificate has no subjectKeyIdentifier to copy into the CRL');
  const ski = asn1js.fromBER(toArrayBuffer(issuerSki)).result;
  if (!(ski instanceof asn1js.OctetString)) throw new Error('malformed subjectKeyIdentifier');
  const hash = hashForSigner(p.signer);

  const crl = new pkijs.CertificateRevocationList();
  crl.version = 1; // v2
  crl.issuer = pkijs.RelativeDistinguishedNames.fromBER(rawSubject(p.issuerCertificate));
  crl.thisUpdate = crlTime(p.thisUpdate);
  crl.nextUpdate = crlTime(p.nextUpdate);
  const revoked = p.entries.map(
    (e) =>
      new pkijs.RevokedCertificate({
        userCertificate: serialInteger(e.serialHex),
        revocationDate: crlTime(e.revokedAt),
        ...(e.reason === 'unspecified'
          ? {}
          : {
              crlEntryExtensions: new pkijs.Extensions({
                extensions: [
                  extension(OID.reasonCode, new asn1js.Enumerated({ value: reasonCode(e.reason) })),
                ],
              }),
            }),
      }),
  );
  // An empty revokedCertificates SEQUENCE is not allowed (RFC 5280 5.1.2.6): leave it out.
  if (revoked.length > 0) crl.revokedCertificates = revoked;
  else delete crl.revokedCertificates;
  crl.crlExtensions = new pkijs.Extensions({
    extensions: [
      extension(
        OID.authorityKeyIdentifier,
        new pkijs.AuthorityKeyIdentifier({
          keyIdentifier: new asn1js.OctetString({ valueHex: ski.valueBlock.valueHexView.slice().buffer }),
        }).toSchema(),
      ),
      extension(OID.cRLNumber, new asn1js.Integer({ value: p.crlNumber })),
    ],
  });

  // The same AlgorithmIdentifier signTbs() puts outside the TBS (they must match, RFC 5280 5.1.2.2).
  crl.signature = signatureAlgorithm(p.signer.keyAlgorithm, hash);
  const tbs = new Uint8Array((crl.toSchema(true) as asn1js.Sequence).valueBlock.value[0]!.toBER());
  const issuerSpki = new Uint8Array(issuerCert.subjectPublicKeyInfo.toSchema().toBER());
  const signed = await signTbs(p.signer, tbs, issuerSpki, hash);
  // toSchema() re-emits tbsView as is: the CRL carries exactly the bytes that were signed.
  crl.tbsView = tbs;
  crl.signatureAlgorithm = signed.algorithm;
  crl.signatureValue = signed.value;
  return new Uint8Array(crl.toSchema().toBER());
}

/** What a CRL says, read back (routes and tests). Throws on a malformed CRL. */
export function crlInfo(der: Uint8Array): CrlInfo {
  const crl = pkijs.CertificateRevocationList.fromBER(der);
  const number = crl.crlExtensions?.extensions.find((e) => e.extnID === OID.cRLNumber);
  let crlNumber: number | undefined;
  if (number) {
    const parsed = asn1js.fromBER(number.extnValue.valueBlock.valueHexView).result;
    if (parsed instanceof asn1js.Integer) crlNumber = Number(parsed.toBigInt());
  }
  return {
    crlNumber,
    thisUpdate: crl.thisUpdate.value,
    nextUpdate: crl.nextUpdate?.value,
    serials: (crl.revokedCertificates ?? []).map((r) =>
      unsignedHex(r.userCertificate.valueBlock.valueHexView),
    ),
  };
}

/** INTEGER from a positive serial in hex (leading zeros dropped, a sign byte added when needed). */
export function serialInteger(serialHex: string): asn1js.Integer {
  const clean = serialHex.toLowerCase().replace(/^0+/, '');
  if (!/^[0-9a-f]+$/.test(clean)) throw new Error(`serial "${serialHex}" is not a positive hex number`);
  const bytes = Buffer.from(clean.length % 2 ? `0${clean}` : clean, 'hex');
  const der = bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
  return new asn1js.Integer({ valueHex: toArrayBuffer(new Uint8Array(der)) });
}

export function unsignedHex(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes)
    .toString('hex')
    .replace(/^(00)+/, '');
  return hex === '' ? '00' : hex;
}

function reasonCode(reason: RevocationReason): number {
  const code = REASON_CODES[reason];
  if (code === undefined) throw new Error(`unknown revocation reason "${reason}"`);
  return code;
}

/** RFC 5280 5.1.2.4: UTCTime through 2049, GeneralizedTime after; whole seconds only. */
function crlTime(date: Date): pkijs.Time {
  const value = wholeSeconds(date);
  const year = value.getUTCFullYear();
  return new pkijs.Time({ type: year >= 1950 && year < 2050 ? 0 : 1, value });
}

function extension(extnID: string, value: asn1js.BaseBlock): pkijs.Extension {
  return new pkijs.Extension({ extnID, critical: false, extnValue: value.toBER() });
}

function extensionValue(cert: pkijs.Certificate, oid: string): Uint8Array | undefined {
  const found = cert.extensions?.find((e) => e.extnID === oid);
  return found ? new Uint8Array(found.extnValue.valueBlock.valueHexView) : undefined;
}
