/**
 * FROZEN: workflow code as it ran until 2026-12-01, kept only so executions started before then
 * replay and finish as they began (their histories hold no `device-admission-and-outbox` marker). Never edit it;
 * delete it (and deprecate the patch) once no such execution is open:
 *   temporal workflow list --query 'WorkflowType="deviceLifecycle" AND ExecutionStatus="Running" AND StartTime < "2026-12-01T00:00:00Z"'
 */
import {
  ActivityFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { HsmActivities, LifecycleActivities, PkiEvent, RevocationReason } from './activities-2026-11.js';
import {
  CertNotAfterKey,
  certificateIssuedSignal,
  type DeviceCertificate,
  type DeviceLifecycleInput,
  type DeviceLifecycleState,
  deviceRemovedSignal,
  deviceStateQuery,
  HSM_TASK_QUEUE,
  type PkiStatus,
  PkiStatusKey,
  revokeSignal,
} from './definitions-2026-11.js';

/** Enough to drop duplicate signals after a continue-as-new, without growing without bound. */
const SEEN_SERIALS_KEPT = 20;

type Command =
  | { kind: 'issued'; certificate: DeviceCertificate }
  | { kind: 'revoke'; reason: RevocationReason; by: string }
  | { kind: 'removed'; source: string };

// Bookkeeping and revocation must eventually happen: retried with capped back-off for as long as it
// takes (an operator sees the pending activity and its error in the Web UI).
const acts = proxyActivities<LifecycleActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '5 minutes' },
});
const hsm = proxyActivities<HsmActivities>({
  taskQueue: HSM_TASK_QUEUE,
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '5 minutes' },
});

/**
 * A device's certificate life (DESIGN.md "Device lifecycle"): `device/<profile>/<deviceId>`.
 * Holds the current certificate; it is RenewalDue at the renewal point, RenewalOverdue (an operator
 * escalation) a margin before expiry, Expired at notAfter. A renewal starts the story again through
 * continue-as-new; the superseded certificate is revoked after the profile's grace period.
 */
export async function deviceLifecycleBeforeOutbox(input: DeviceLifecycleInput): Promise<void> {
  const { workflowId } = workflowInfo();
  const state: DeviceLifecycleState = input.carried ?? {
    status: 'Pending',
    current: undefined,
    superseded: [],
    seenSerials: [],
  };
  const commands: Command[] = [];
  // Ignored duplicate signals grow the history too: wake up when Temporal suggests a fresh run, not
  // only at the next timer. Patched, so histories recorded before this replay as they were.
  const wakeOnHistorySuggestion = patched('wake-on-continue-as-new-suggestion');

  setHandler(deviceStateQuery, () => state);
  setHandler(certificateIssuedSignal, (certificate) => {
    if (!state.seenSerials.includes(certificate.serialHex)) commands.push({ kind: 'issued', certificate });
  });
  setHandler(revokeSignal, (payload) => {
    commands.push({
      kind: 'revoke',
      reason: payload?.reason ?? 'unspecified',
      by: payload?.by ?? 'operator',
    });
  });
  setHandler(deviceRemovedSignal, (payload) => {
    commands.push({ kind: 'removed', source: payload?.source ?? 'mdm' });
  });

  for (;;) {
    let renewed = false;
    for (let command = commands.shift(); command; command = commands.shift()) {
      if (command.kind === 'issued') renewed = (await adopt(command.certificate)) || renewed;
      if (command.kind === 'revoke') await revokeCurrent(command.reason, command.by);
      if (command.kind === 'removed') await remove(command.source);
    }
    if (state.removed) {
      await condition(allHandlersFinished);
      return;
    }
    // Each certificate starts a fresh history; so does a long one, when Temporal suggests it.
    if (renewed || workflowInfo().continueAsNewSuggested) {
      await condition(allHandlersFinished);
      return continueAsNew<typeof deviceLifecycleBeforeOutbox>({ ...input, carried: { ...state } });
    }
    await revokeSupersededDue();
    await advanceByClock();

    const wakeAt = nextDeadline();
    await condition(
      () => commands.length > 0 || (wakeOnHistorySuggestion && workflowInfo().continueAsNewSuggested),
      wakeAt === undefined ? undefined : Math.max(wakeAt - Date.now(), 1),
    );
  }

  /** Returns true when the certificate became the current one. */
  async function adopt(certificate: DeviceCertificate): Promise<boolean> {
    state.seenSerials = [...state.seenSerials, certificate.serialHex].slice(-SEEN_SERIALS_KEPT);
    const previous = state.current;
    // An older certificate delivered late never replaces a newer one. Equal notAfter is a renewal
    // within the same second (certificate times have one-second resolution): it is the newer one.
    if (previous && Date.parse(certificate.notAfter) < Date.parse(previous.notAfter)) return false;
    if (
      previous &&
      state.status !== 'Revoked' &&
      state.status !== 'Expired' &&
      input.policy.supersededGraceSeconds !== null
    ) {
      const revokeAt = new Date(Date.now() + input.policy.supersededGraceSeconds * 1000).toISOString();
      state.superseded = [...state.superseded, { certificate: previous, revokeAt }];
    }
    state.current = certificate;
    upsertSearchAttributes([{ key: CertNotAfterKey, value: new Date(certificate.notAfter) }]);
    await setStatus('Active');
    return true;
  }

  async function revokeCurrent(reason: RevocationReason, by: string) {
    const current = state.current;
    if (!current || state.status === 'Revoked') return;
    if (await revoke(current, reason, by)) await setStatus('Revoked');
  }

  /** The device left the MDM: every certificate it may still hold is revoked. */
  async function remove(source: string) {
    for (const { certificate } of state.superseded)
      await revoke(certificate, 'cessationOfOperation', `mdm:${source}`);
    state.superseded = [];
    if (state.current && state.status !== 'Revoked' && state.status !== 'Expired')
      await revoke(state.current, 'cessationOfOperation', `mdm:${source}`);
    state.removed = { at: new Date().toISOString(), source };
    await setStatus('Revoked');
  }

  async function revokeSupersededDue() {
    const now = Date.now();
    const due = state.superseded.filter((s) => Date.parse(s.revokeAt) <= now);
    for (const { certificate } of due) await revoke(certificate, 'superseded', 'lifecycle');
    state.superseded = state.superseded.filter((s) => Date.parse(s.revokeAt) > now);
  }

  /** True once the certificate is revoked; false when the revocation was refused (and recorded). */
  async function revoke(
    certificate: DeviceCertificate,
    reason: RevocationReason,
    by: string,
  ): Promise<boolean> {
    let revokedAt: string;
    try {
      ({ revokedAt } = await hsm.revokeCertificate({
        issuingCa: certificate.issuingCa,
        serialHex: certificate.serialHex,
        reason,
        revokedAt: new Date().toISOString(),
        actor: by,
      }));
    } catch (err) {
      // Only a definitive refusal gets here (infrastructure failures retry forever): the device's
      // life goes on, and the refusal is on record for an operator.
      await acts.recordAudit({
        profile: input.profile,
        deviceId: input.deviceId,
        subject: certificate.serialHex,
        entries: [
          {
            at: new Date().toISOString(),
            action: 'certificate.revocation_refused',
            details: {
              reason,
              by,
              error: err instanceof ActivityFailure ? String(err.cause?.message) : String(err),
            },
          },
        ],
      });
      return false;
    }
    await publish(event('certificate.revoked', { serialHex: certificate.serialHex, reason, by, revokedAt }));
    return true;
  }

  /** Which status the clock says the current certificate is in; announces each change once. */
  async function advanceByClock() {
    const current = state.current;
    if (!current || state.status === 'Revoked' || state.status === 'Expired') return;
    const now = Date.now();
    const points = timeline(current);
    if (now >= points.expiry) {
      await setStatus('Expired');
      await publish(event('certificate.expired', { serialHex: current.serialHex }));
    } else if (now >= points.overdue && state.status !== 'RenewalOverdue') {
      await setStatus('RenewalOverdue');
      await publish(
        event('certificate.renewal_overdue', { serialHex: current.serialHex, notAfter: current.notAfter }),
      );
    } else if (now >= points.renewal && state.status === 'Active') {
      await setStatus('RenewalDue');
      await publish(
        event('certificate.renewal_due', { serialHex: current.serialHex, notAfter: current.notAfter }),
      );
    }
  }

  function nextDeadline(): number | undefined {
    const candidates = state.superseded.map((s) => Date.parse(s.revokeAt));
    const current = state.current;
    if (current && state.status !== 'Revoked' && state.status !== 'Expired') {
      const points = timeline(current);
      if (state.status === 'Active') candidates.push(points.renewal);
      if (state.status === 'Active' || state.status === 'RenewalDue') candidates.push(points.overdue);
      candidates.push(points.expiry);
    }
    return candidates.length > 0 ? Math.min(...candidates) : undefined;
  }

  function timeline(certificate: DeviceCertificate) {
    const from = Date.parse(certificate.notBefore);
    const expiry = Date.parse(certificate.notAfter);
    const lifetime = expiry - from;
    const { renewalLeadSeconds, overdueMarginSeconds, renewalFraction } = input.policy;
    const renewal =
      renewalLeadSeconds !== undefined
        ? expiry - renewalLeadSeconds * 1000
        : from + lifetime * renewalFraction;
    const overdue =
      expiry - (overdueMarginSeconds !== undefined ? overdueMarginSeconds * 1000 : lifetime / 10);
    return { renewal, overdue: Math.max(overdue, renewal), expiry };
  }

  async function setStatus(status: PkiStatus) {
    if (state.status === status) return;
    state.status = status;
    upsertSearchAttributes([{ key: PkiStatusKey, value: status }]);
    await acts.recordDeviceStatus({
      profile: input.profile,
      deviceId: input.deviceId,
      status,
      serialHex: state.current?.serialHex,
    });
  }

  /** A profile without webhooks or e-mail costs no activity per status change. */
  async function publish(pkiEvent: PkiEvent) {
    // Older runs carried no flag: keep publishing for them.
    if (input.policy.publishesEvents !== false) await acts.publishEvent(pkiEvent);
  }

  function event(type: PkiEvent['type'], data: Record<string, unknown>): PkiEvent {
    return {
      type,
      id: `${workflowId}/${type}/${String(data.serialHex ?? '')}`,
      at: new Date().toISOString(),
      profile: input.profile,
      deviceId: input.deviceId,
      workflowId,
      data,
    };
  }
}
