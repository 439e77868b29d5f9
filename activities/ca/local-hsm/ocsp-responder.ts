/**
 * Certificates of the delegated OCSP responders (RFC 6960 4.2.2.2): signed here, by the issuing CA
 * key in the CA token, for the responder key the API registered (ocsp_responders); the API signs OCSP
 * answers with that key in its RA token and never touches a CA key. Short-lived (7 days) and renewed
 * two days before they run out, so id-pkix-ocsp-nocheck is safe: a responder certificate needs no
 * revocation checking of its own.
 */
import { eq } from 'drizzle-orm';
import type { Database } from '../../../db/client.js';
import { ocspResponders } from '../../../db/schema.js';
import type { HsmToken } from '../../../hsm/token.js';
import { certificateInfo } from '../../../pki/x509/certificate.js';
import { encodeName } from '../../../pki/x509/name.js';
import { signDelegatedCertificate } from './delegated-certificate.js';

export const RESPONDER_VALIDITY_MS = 7 * 86_400_000;
export const RESPONDER_RENEW_BEFORE_MS = 2 * 86_400_000;
const OCSP_SIGNING = '1.3.6.1.5.5.7.3.9';

export type ResponderOutcome = 'certified' | 'current' | 'no-key-registered';

export async function certifyOcspResponder(
  deps: { db: Database; token: HsmToken },
  issuingCa: string,
  now = new Date(),
): Promise<ResponderOutcome> {
  const [row] = await deps.db.select().from(ocspResponders).where(eq(ocspResponders.issuingCa, issuingCa));
  if (!row) return 'no-key-registered';
  if (row.certificate && row.notAfter && row.notAfter.getTime() - now.getTime() > RESPONDER_RENEW_BEFORE_MS) {
    const certified = certificateInfo(row.certificate).subjectPublicKeyInfo;
    if (Buffer.from(certified).equals(Buffer.from(row.spki))) return 'current';
  }
  const { der, notAfter } = await signDelegatedCertificate(deps, {
    issuingCa,
    reservationId: `ocsp-responder/${issuingCa}/${now.toISOString()}`,
    spki: row.spki,
    subject: (issuerSubject) => {
      const issuerCn = /(?:^|,)CN=([^,]+)/.exec(issuerSubject)?.[1] ?? issuingCa;
      return encodeName([['CN', `OCSP Responder for ${issuerCn}`.slice(0, 64)]]);
    },
    validityMs: RESPONDER_VALIDITY_MS,
    now,
    extensions: { keyUsages: ['digitalSignature'], extendedKeyUsages: [OCSP_SIGNING], ocspNoCheck: true },
  });
  // Only for the key it was made for: a key the API rotated meanwhile waits for the next round.
  await deps.db
    .update(ocspResponders)
    .set({ certificate: der, notAfter, updatedAt: now })
    .where(eq(ocspResponders.issuingCa, issuingCa));
  return 'certified';
}
