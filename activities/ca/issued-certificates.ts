/**
 * Every certificate a CA signed is on record before anyone (device, MDM) hears of it, so it is
 * revocable from the moment it exists. Idempotent per enrollment: a retry finds the row.
 */
import { eq } from 'drizzle-orm';
import type { Database } from '../../db/client.js';
import { auditEvents, certificates } from '../../db/schema.js';
import type { VerifiedIdentity } from '../../pki/admission/identity.js';
import { certificateInfo } from '../../pki/x509/certificate.js';
import type { IssuedCertificate } from '../../workflows/definitions.js';

/** The certificate already issued for this enrollment (a retried activity), if any, and its profile. */
export async function issuedFor(
  db: Database,
  enrollmentId: string,
): Promise<{ issued: IssuedCertificate; profile: string } | undefined> {
  const [row] = await db
    .select({ der: certificates.der, issuingCa: certificates.issuingCa, profile: certificates.profile })
    .from(certificates)
    .where(eq(certificates.enrollmentId, enrollmentId));
  return row ? { issued: describeIssued(row.der, row.issuingCa), profile: row.profile } : undefined;
}

export async function storeIssued(
  db: Database,
  input: {
    enrollmentId: string;
    profile: string;
    deviceId: string;
    identity: VerifiedIdentity;
    der: Uint8Array;
    issuingCa: string;
  },
): Promise<IssuedCertificate> {
  const issued = describeIssued(input.der, input.issuingCa);
  const info = certificateInfo(input.der);
  await db.transaction(async (tx) => {
    const stored = await tx
      .insert(certificates)
      .values({
        issuingCa: input.issuingCa,
        serialHex: issued.serialHex,
        profile: input.profile,
        deviceId: input.deviceId,
        enrollmentId: input.enrollmentId,
        subject: info.subject,
        notBefore: info.notBefore,
        notAfter: info.notAfter,
        sha256Hex: issued.sha256Hex,
        der: input.der,
        identity: input.identity,
      })
      .onConflictDoNothing()
      .returning({ serialHex: certificates.serialHex });
    if (stored.length === 0) return;
    await tx.insert(auditEvents).values({
      actor: 'ca',
      action: 'certificate.issued',
      profile: input.profile,
      deviceId: input.deviceId,
      subject: input.enrollmentId,
      details: {
        serialHex: issued.serialHex,
        issuingCa: input.issuingCa,
        subject: info.subject,
        notAfter: issued.notAfter,
        vouchedBy: input.identity.vouchedBy,
      },
    });
  });
  return issued;
}

function describeIssued(der: Uint8Array, issuingCa: string): IssuedCertificate {
  const info = certificateInfo(der);
  return {
    certificate: Buffer.from(der).toString('base64'),
    serialHex: info.serialHex,
    issuingCa,
    notBefore: info.notBefore.toISOString(),
    notAfter: info.notAfter.toISOString(),
    sha256Hex: info.sha256Hex,
  };
}
