import { createHash } from 'node:crypto';
import { and, eq } from 'drizzle-orm';
import type { Database } from '../../db/client.js';
import { certificates, devices } from '../../db/schema.js';
import type { VerifiedIdentity } from '../../pki/admission/identity.js';
import type { RenewalSignerVerdict } from '../../workflows/activities.js';

/**
 * Renewal: the request is signed with a certificate, and that certificate is the proof. It counts
 * only if it is one we issued (same bytes on record) under this profile, valid now, not revoked, and
 * its device's current certificate: one it superseded (even inside its grace period) no longer
 * renews, nor does anything of a device that was revoked or removed. The renewal keeps the identity
 * that certificate was issued to. Failure codes follow RFC 8894: unknown certificate → badCertId,
 * outside its validity → badTime, anything else → badRequest.
 */
export async function checkRenewalSigner(
  db: Database,
  input: { profile: string; signerCertificate: string },
  now = new Date(),
): Promise<RenewalSignerVerdict> {
  const der = Buffer.from(input.signerCertificate, 'base64');
  const fingerprint = createHash('sha256').update(der).digest('hex');
  const [known] = await db
    .select()
    .from(certificates)
    .where(eq(certificates.sha256Hex, fingerprint))
    .limit(1);
  const refused = (
    failInfo: 'badRequest' | 'badCertId' | 'badTime',
    reason: string,
  ): RenewalSignerVerdict => ({
    verdict: 'refused',
    failInfo,
    reason,
  });
  if (!known) return refused('badCertId', 'the renewal is signed by a certificate this CA did not issue');
  if (known.profile !== input.profile)
    return refused('badRequest', `the signing certificate belongs to profile ${known.profile}`);
  if (known.status === 'revoked')
    return refused('badRequest', `the signing certificate ${known.serialHex} is revoked`);
  if (now < known.notBefore || now >= known.notAfter)
    return refused('badTime', `the signing certificate ${known.serialHex} is not valid now`);
  const [device] = await db
    .select({
      current: devices.currentCertificateSerial,
      blockedAt: devices.blockedAt,
      blockedReason: devices.blockedReason,
    })
    .from(devices)
    .where(and(eq(devices.profile, known.profile), eq(devices.deviceId, known.deviceId)));
  if (device?.blockedAt)
    return refused(
      'badRequest',
      `device ${known.deviceId} was ${device.blockedReason ?? 'revoked'}; an operator must readmit it`,
    );
  if (device?.current && device.current !== known.serialHex)
    return refused(
      'badRequest',
      `the signing certificate ${known.serialHex} was superseded by ${device.current}; only the current certificate renews`,
    );
  return {
    verdict: 'accepted',
    serialHex: known.serialHex,
    // Certificates issued before identities were recorded: the device named itself (its CN).
    identity: (known.identity as VerifiedIdentity | null) ?? {
      deviceId: known.deviceId,
      vouchedBy: null,
      attributes: { id: known.deviceId, commonName: known.deviceId },
    },
  };
}
