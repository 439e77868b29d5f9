import {
  condition,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { CaActivities, CaRotationActivities, CaRotationHsmActivities } from './activities.js';
import {
  type CaRotationInput,
  type CaRotationState,
  CaRotationStateKey,
  type CaRotationStatus,
  caRotationStateQuery,
  HSM_TASK_QUEUE,
  PkiProfileKey,
  pauseRotationSignal,
  resumeRotationSignal,
} from './definitions.js';

const db = proxyActivities<CaRotationActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});
const hsm = proxyActivities<CaRotationHsmActivities & Pick<CaActivities, 'publishCrl'>>({
  taskQueue: HSM_TASK_QUEUE,
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '2 seconds', maximumInterval: '1 minute' },
});

/**
 * Issuing-CA rotation of one profile (`ca/<profile>/rotation`), the story in order:
 * prepare the next CA (key and certificate in the CA token, RA certificate, first CRL) → announce it
 * (GetNextCACert, event `ca.rotation_announced`) → promote it at `promoteAt` (new enrollments and
 * renewals issue from it, GetCACert serves it, event `ca.promoted`) → the old CA keeps signing CRLs
 * and answering OCSP until its last certificate expires → deactivate its key → destroy it after the
 * retention period (event `ca.retired`). Devices move to the new CA at their next renewal.
 * An operator may `pause` before any step and `resume`; the state is the `CaRotationState` search
 * attribute and the `state` query.
 */
export async function caRotation(input: CaRotationInput): Promise<CaRotationStatus> {
  const workflowId = workflowInfo().workflowId;
  const status: CaRotationStatus = { profile: input.profile, state: 'Preparing', paused: false };
  if (input.promoteAt) status.promoteAt = input.promoteAt;
  setHandler(caRotationStateQuery, () => status);
  setHandler(pauseRotationSignal, (p) => {
    if (status.paused) return;
    status.paused = true;
    upsertSearchAttributes({ [CaRotationStateKey.name]: ['Paused'] });
    void db.recordRotationAudit({
      profile: input.profile,
      workflowId,
      action: 'ca.rotation_paused',
      actor: p?.by ?? 'operator',
      details: { during: status.state, ...(p?.reason ? { reason: p.reason } : {}) },
    });
  });
  setHandler(resumeRotationSignal, (p) => {
    if (!status.paused) return;
    status.paused = false;
    upsertSearchAttributes({ [CaRotationStateKey.name]: [status.state] });
    void db.recordRotationAudit({
      profile: input.profile,
      workflowId,
      action: 'ca.rotation_resumed',
      actor: p?.by ?? 'operator',
      details: { during: status.state, ...(p?.reason ? { reason: p.reason } : {}) },
    });
  });
  const enter = async (state: CaRotationState) => {
    // A paused rotation takes no step: it waits here, its timers paused with it.
    await condition(() => !status.paused);
    status.state = state;
    upsertSearchAttributes({ [PkiProfileKey.name]: [input.profile], [CaRotationStateKey.name]: [state] });
  };
  /** Sleeps until `at` (ISO), never acting while paused. */
  const until = async (at: string) => {
    for (;;) {
      await condition(() => !status.paused);
      const left = Date.parse(at) - Date.now();
      if (left <= 0) return;
      await condition(() => status.paused, left);
    }
  };

  await enter('Preparing');
  const { next, previous, nextNotAfter } = await hsm.prepareCaGeneration({
    profile: input.profile,
    workflowId,
    raCertificate: input.raCertificate,
    requestedBy: input.requestedBy,
  });
  status.next = next;
  status.previous = previous;

  await enter('Announced');
  await db.recordRotationEvent({
    profile: input.profile,
    workflowId,
    type: 'ca.rotation_announced',
    action: 'ca.rotation_announced',
    details: {
      next,
      previous,
      nextNotAfter,
      promoteAt: input.promoteAt ?? null,
      requestedBy: input.requestedBy,
    },
  });
  if (input.promoteAt) await until(input.promoteAt);

  await enter('Promoted');
  await db.promoteCaGeneration({ profile: input.profile, workflowId, generation: next.generation });

  await enter('RetiringOldCa');
  // Whatever the old CA was still asked to sign around the promotion is stored by then.
  await until(new Date(Date.now() + input.settleSeconds * 1000).toISOString());
  for (;;) {
    const last = await db.lastCertificateExpiry({ issuingCa: previous.keyLabel });
    if (!last || Date.parse(last) <= Date.now()) break;
    status.oldCaLastExpiry = last;
    await until(last);
  }
  // Its final CRL, signed while it still can: the CRL stays served after the key is gone.
  await hsm.publishCrl({ issuingCa: previous.keyLabel });
  await enter('RetiringOldCa');
  await hsm.deactivateCaGeneration({ profile: input.profile, workflowId, generation: previous.generation });

  status.destroyAt = new Date(Date.now() + input.retentionSeconds * 1000).toISOString();
  await until(status.destroyAt);
  await enter('Retired');
  await hsm.destroyCaGeneration({ profile: input.profile, workflowId, generation: previous.generation });
  await db.recordRotationEvent({
    profile: input.profile,
    workflowId,
    type: 'ca.retired',
    action: 'ca.rotation_completed',
    details: { retired: previous, current: next },
  });
  return status;
}
