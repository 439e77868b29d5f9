/** Revocation of one certificate by serial from outside Temporal (operator API, `npm run revoke`). */
import type { Client } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import { caTaskQueue } from '../config/policies.js';
import type { Profile } from '../config/profile-types.js';
import type { certificateRevocation } from '../workflows/certificate-revocation.js';
import {
  type CertificateRevocationResult,
  DeviceIdKey,
  PkiProfileKey,
  type RevocationReason,
  revocationWorkflowId,
  TASK_QUEUE,
} from '../workflows/definitions.js';

export type RevocationOutcome =
  | { outcome: 'revoked'; workflowId: string; result: CertificateRevocationResult }
  /** Still running after the wait (the CA host is away): it will finish; the workflow says when. */
  | { outcome: 'pending'; workflowId: string };

/**
 * Starts `revoke/<issuingCa>/<serial>` (or attaches to it while it runs) and waits up to `waitMs`.
 * Asking again after it finished starts it again: the revocation itself is idempotent.
 */
export async function revokeBySerial(
  client: Client,
  profile: Profile,
  certificate: { issuingCa: string; serialHex: string; deviceId: string },
  request: { reason: RevocationReason; by: string },
  waitMs = 10_000,
): Promise<RevocationOutcome> {
  const workflowId = revocationWorkflowId(certificate.issuingCa, certificate.serialHex);
  const handle = await client.workflow.start<typeof certificateRevocation>('certificateRevocation', {
    workflowId,
    taskQueue: TASK_QUEUE,
    args: [
      {
        issuingCa: certificate.issuingCa,
        serialHex: certificate.serialHex,
        profile: profile.name,
        deviceId: certificate.deviceId,
        reason: request.reason,
        by: request.by,
        caQueue: caTaskQueue(profile),
      },
    ],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
    typedSearchAttributes: [
      { key: PkiProfileKey, value: profile.name },
      { key: DeviceIdKey, value: certificate.deviceId },
    ],
  });
  try {
    const result = await client.withAbortSignal(AbortSignal.timeout(waitMs), () => handle.result());
    return { outcome: 'revoked', workflowId, result };
  } catch (err) {
    if ((err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError')
      return { outcome: 'pending', workflowId };
    throw err;
  }
}
