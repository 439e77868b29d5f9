import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { CaActivities, RevocationActivities } from './activities.js';
import type { CertificateRevocationInput, CertificateRevocationResult } from './definitions.js';

/**
 * Revokes one certificate by serial (`revoke/<issuingCa>/<serial>`): for any certificate this product
 * issued, whether or not a device lifecycle holds it. The CA adapter records it (first reason and
 * time win) and makes the CA say so; then the device's lifecycle, if one runs, hears of it.
 * Idempotent: the same request again changes nothing.
 */
export async function certificateRevocation(
  input: CertificateRevocationInput,
): Promise<CertificateRevocationResult> {
  const ca = proxyActivities<Pick<CaActivities, 'revokeCertificate'>>({
    taskQueue: input.caQueue,
    startToCloseTimeout: '30 seconds',
    // A revocation must happen: retried until the CA host is back (the Web UI shows why it waits).
    retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
  });
  const local = proxyLocalActivities<RevocationActivities>({
    startToCloseTimeout: '30 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
  });
  const revoked = await ca.revokeCertificate({
    issuingCa: input.issuingCa,
    serialHex: input.serialHex,
    reason: input.reason,
    revokedAt: new Date().toISOString(),
    actor: input.by,
  });
  const { notified } = await local.notifyLifecycleOfRevocation({
    profile: input.profile,
    deviceId: input.deviceId,
    serialHex: input.serialHex,
    reason: input.reason,
    by: input.by,
  });
  return { ...revoked, lifecycleNotified: notified };
}
