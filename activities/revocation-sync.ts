/**
 * `pki` queue activities of the scheduled revocation work: Intune's revocation channel
 * (workflows/intune-revocation-sync.ts) and CRL freshness (workflows/crl-refresh.ts).
 */
import type { Client } from '@temporalio/client';
import { inArray } from 'drizzle-orm';
import type { PkiConfig } from '../config/profile-types.js';
import type { Database } from '../db/client.js';
import { caGenerations, crls } from '../db/schema.js';
import { queryLifecycleState, signalRevoke } from '../runtime/device-lifecycle-client.js';
import type { RevocationSyncActivities } from '../workflows/activities.js';
import { deviceWorkflowId, type RevokePayload } from '../workflows/definitions.js';
import { notifyLifecycleOfRevocation } from './lifecycle.js';
import { createIntuneRevocationActivities, type IntuneRevocationDeps } from './mdm/intune-revocation.js';

export interface RevocationSyncDeps extends IntuneRevocationDeps {
  temporal: Client;
}

export function createRevocationSyncActivities(deps: RevocationSyncDeps): RevocationSyncActivities {
  return {
    ...createIntuneRevocationActivities(deps),
    signalLifecycleRevocations: (input) => signalLifecycleRevocations(deps.temporal, input),
    listCrlsDue: (input) => listCrlsDue(deps.db, deps.config, input),
  };
}

/**
 * An MDM revoking the device's current certificate revokes the device (DESIGN.md "Trust model"):
 * its lifecycle gets `revoke`, which revokes every certificate the device still holds and blocks it
 * until readmitted. An older (superseded) certificate is only noted (`certificateRevoked`). A
 * redelivered signal is harmless (revocation is idempotent, the status is already Revoked).
 */
export async function signalLifecycleRevocations(
  client: Client,
  input: Parameters<RevocationSyncActivities['signalLifecycleRevocations']>[0],
): Promise<{ signalled: string[] }> {
  const signalled: string[] = [];
  for (const { profile, deviceId, serialHex } of input.revoked) {
    const workflowId = deviceWorkflowId(profile, deviceId);
    let state: Awaited<ReturnType<typeof queryLifecycleState>>;
    try {
      state = await queryLifecycleState(client, workflowId);
    } catch (err) {
      // No lifecycle (never handed off, or past retention): the certificate row is what counts.
      if ((err as Error).name === 'WorkflowNotFoundError') continue;
      throw err;
    }
    if (state.removed || state.status === 'Revoked') continue;
    if (state.current?.serialHex !== serialHex) {
      const told = await notifyLifecycleOfRevocation(client, {
        profile,
        deviceId,
        serialHex,
        reason: input.reason,
        by: input.by,
      });
      if (told.notified) signalled.push(workflowId);
      continue;
    }
    const sent = await signalRevoke(
      client,
      { profile, deviceId },
      { reason: narrow(input.reason), by: input.by },
    );
    if (sent.outcome === 'signalled') signalled.push(workflowId);
  }
  return { signalled };
}

/** RevokePayload has no certificateHold: a hold is never what a revocation sync means. */
function narrow(
  reason: Parameters<RevocationSyncActivities['signalLifecycleRevocations']>[0]['reason'],
): NonNullable<RevokePayload['reason']> {
  return reason === 'certificateHold' ? 'unspecified' : reason;
}

/** Local issuing CAs (one per key label) with no CRL yet or one whose nextUpdate is near. */
export async function listCrlsDue(
  db: Database,
  config: PkiConfig,
  input: { withinSeconds: number },
): Promise<Array<{ issuingCa: string; nextUpdate: string | null }>> {
  // Every generation still active signs CRLs (an old one until its last certificate expires); a
  // deactivated or destroyed one no longer can.
  const generations = await db
    .select({ keyLabel: caGenerations.keyLabel, state: caGenerations.state })
    .from(caGenerations);
  const retired = new Set(generations.filter((g) => g.state !== 'active').map((g) => g.keyLabel));
  const labels = [
    ...new Set([
      ...config.profiles.flatMap((p) => (p.ca.type === 'local-hsm' ? [p.ca.keyLabel] : [])),
      ...generations.filter((g) => g.state === 'active').map((g) => g.keyLabel),
    ]),
  ].filter((label) => !retired.has(label));
  if (labels.length === 0) return [];
  const rows = await db
    .select({ issuingCa: crls.issuingCa, nextUpdate: crls.nextUpdate, crlNumber: crls.crlNumber })
    .from(crls)
    .where(inArray(crls.issuingCa, labels));
  const horizon = Date.now() + input.withinSeconds * 1000;
  return labels.flatMap((issuingCa): Array<{ issuingCa: string; nextUpdate: string | null }> => {
    const row = rows.find((r) => r.issuingCa === issuingCa);
    // crlNumber 0 is the placeholder publishCrl locks before its first CRL: no CRL yet.
    if (!row || row.crlNumber === 0) return [{ issuingCa, nextUpdate: null }];
    return row.nextUpdate.getTime() <= horizon
      ? [{ issuingCa, nextUpdate: row.nextUpdate.toISOString() }]
      : [];
  });
}
