import { createHash } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type { Database } from '../../db/client.js';
import { certificates } from '../../db/schema.js';
import type { RenewalSignerVerdict } from '../types.js';

/**
 * A renewal is signed with the device's current certificate. It counts only if that certificate is
 * one we issued (same bytes on record), for this profile and device, not revoked and valid now.
 * Failure codes follow RFC 8894: unknown certificate → badCertId, outside its validity → badTime,
 * anything else (revoked, another device) → badRequest.
 */
export async function checkRenewalSigner(
  db: Database,
  input: { profile: string; deviceId: string; signerCertificate: string },
  now = new Date(),
): Promise<RenewalSignerVerdict> {
  const der = Buffer.from(input.signerCertificate, 'base64');
  const fingerprint = createHash('sha256').update(der).digest('hex');
  const [known] = await db
    .select()
    .from(certificates)
    .where(eq(certificates.sha256Hex, fingerprint))
    .limit(1);
  if (!known)
    return {
      verdict: 'refused',
      failInfo: 'badCertId',
      reason: 'the renewal is signed by a certificate this CA did not issue',
    };
  if (known.profile !== input.profile || known.deviceId !== input.deviceId)
    return {
      verdict: 'refused',
      failInfo: 'badRequest',
      reason: `the signing certificate belongs to another device (${known.profile}/${known.deviceId})`,
    };
  if (known.status === 'revoked')
    return {
      verdict: 'refused',
      failInfo: 'badRequest',
      reason: `the signing certificate ${known.serialHex} is revoked`,
    };
  if (now < known.notBefore || now >= known.notAfter)
    return {
      verdict: 'refused',
      failInfo: 'badTime',
      reason: `the signing certificate ${known.serialHex} is not valid now`,
    };
  return { verdict: 'accepted', serialHex: known.serialHex };
}
