import { createHash } from 'node:crypto';
import type { Database } from '../../db/client.js';
import { certificates } from '../../db/schema.js';
import { certificateInfo } from '../../pki/x509/certificate.js';
import type { IssuedCertificate } from '../../workflows/definitions.js';

/**
 * Stores a freshly signed certificate before anyone (device, MDM) hears of it, so every certificate
 * the CA signed is on record and revocable. Idempotent: a retry finds the row.
 */
export async function storeIssuedCertificate(
  db: Database,
  input: { enrollmentId: string; profile: string; deviceId: string; issued: IssuedCertificate },
): Promise<void> {
  const der = Buffer.from(input.issued.certificate, 'base64');
  const info = certificateInfo(der);
  await db
    .insert(certificates)
    .values({
      issuingCa: input.issued.issuingCa,
      serialHex: input.issued.serialHex,
      profile: input.profile,
      deviceId: input.deviceId,
      enrollmentId: input.enrollmentId,
      subject: info.subject,
      notBefore: info.notBefore,
      notAfter: info.notAfter,
      sha256Hex: createHash('sha256').update(der).digest('hex'),
      der,
    })
    .onConflictDoNothing();
}
