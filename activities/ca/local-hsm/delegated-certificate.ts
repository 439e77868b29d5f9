/**
 * A short-lived certificate the issuing CA signs for a key that is not a device's and that another
 * process made (an OCSP responder key in the RA token, a service credential key in the data token):
 * the issuer's certificate and signer from the CA token, a validity no longer than the issuer's, a
 * serial reserved before signing (a retry with the same reservation id signs with the same one).
 */

import type { Database } from '../../../db/client.js';
import type { HsmToken } from '../../../hsm/token.js';
import { buildCertificate, type CertificateParams, certificateInfo } from '../../../pki/x509/certificate.js';
import { reserveSerial } from './serials.js';

export async function signDelegatedCertificate(
  deps: { db: Database; token: HsmToken },
  p: {
    issuingCa: string;
    /** Names the serial reservation: the same id, the same serial. */
    reservationId: string;
    spki: Uint8Array;
    /** The subject (DER Name), given the issuer's subject as text. */
    subject: (issuerSubject: string) => Uint8Array;
    validityMs: number;
    now: Date;
    extensions: CertificateParams['extensions'];
  },
): Promise<{ der: Uint8Array; serialHex: string; notAfter: Date }> {
  const [issuer, signer] = await Promise.all([
    deps.token.certificate(p.issuingCa),
    deps.token.signer(p.issuingCa),
  ]);
  if (!issuer)
    throw new Error(`HSM token "${deps.token.tokenLabel}" holds no certificate for "${p.issuingCa}"`);
  const issuerInfo = certificateInfo(issuer);
  const notBefore = new Date(p.now.getTime() - 5 * 60_000);
  const notAfter = new Date(Math.min(p.now.getTime() + p.validityMs, issuerInfo.notAfter.getTime()));
  const { serialHex } = await reserveSerial(deps.db, {
    issuingCa: p.issuingCa,
    enrollmentId: p.reservationId,
    notBefore,
    notAfter,
  });
  const der = await buildCertificate({
    serialNumber: Buffer.from(serialHex, 'hex'),
    subject: p.subject(issuerInfo.subject),
    subjectPublicKeyInfo: p.spki,
    notBefore,
    notAfter,
    issuer: { kind: 'ca', certificate: issuer, signer },
    extensions: p.extensions,
  });
  return { der, serialHex, notAfter };
}
