import {
  ActivityFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { CaActivities, LifecycleActivities, PkiEvent, RevocationReason } from './activities.js';
import {
  CertNotAfterKey,
  certificateIssuedSignal,
  certificateRevokedSignal,
  type DeviceCertificate,
  type DeviceLifecycleInput,
  type DeviceLifecycleState,
  deviceRemovedSignal,
  deviceStateQuery,
  HSM_TASK_QUEUE,
  type PkiStatus,
  PkiStatusKey,
  readmitSignal,
  revokeSignal,
} from './definitions.js';
import { deviceLifecycleBeforeOutbox } from './legacy/device-lifecycle-2026-11.js';

/** Marks runs of this code; runs started before replay workflows/legacy/device-lifecycle-2026-11.ts. */
export const LIFECYCLE_PATCH = 'device-admission-and-outbox';

/** Enough to drop duplicate signals after a continue-as-new, without growing without bound. */
const SEEN_SERIALS_KEPT = 20;

type Command =
  | { kind: 'issued'; certificate: DeviceCertificate }
  | { kind: 'revoke'; reason: RevocationReason; by: string }
  | { kind: 'removed'; source: string }
  | { kind: 'readmit'; by: string; note?: string }
  | { kind: 'revoked-elsewhere'; serialHex: string; reason: RevocationReason; by: string };

// Bookkeeping and revocation must eventually happen: retried with capped back-off for as long as it
// takes (an operator sees the pending activity and its error in the Web UI). Nothing here waits for
// an event receiver: events go to the outbox in the same transaction as the status they announce.
const forever = { initialInterval: '1 second', maximumInterval: '5 minutes' } as const;
const local = proxyLocalActivities<LifecycleActivities>({
  startToCloseTimeout: '30 seconds',
  retry: forever,
});

/**
 * A device's certificate life (DESIGN.md "Device lifecycle"): `device/<profile>/<deviceId>`.
 * Holds the current certificate; it is RenewalDue at the renewal point, RenewalOverdue (an operator
 * escalation) a margin before expiry, Expired at notAfter. A renewal starts the story again through
 * continue-as-new; the superseded certificate is revoked after the profile's grace period. Revoking
 * the device revokes every valid certificate it holds and blocks it until an operator readmits it.
 */
export async function deviceLifecycle(input: DeviceLifecycleInput): Promise<void> {
  // Runs started before admission and the outbox keep the code they began with.
  if (!patched(LIFECYCLE_PATCH)) return deviceLifecycleBeforeOutbox(input as never);

  const { workflowId } = workflowInfo();
  const ca = proxyActivities<CaActivities>({
    taskQueue: input.policy.caQueue ?? HSM_TASK_QUEUE,
    startToCloseTimeout: '30 seconds',
    retry: forever,
  });
  const state: DeviceLifecycleState = input.carried ?? {
    status: 'Pending',
    current: undefined,
    superseded: [],
    seenSerials: [],
  };
  const commands: Command[] = [];

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
  setHandler(readmitSignal, (payload) => {
    commands.push({
      kind: 'readmit',
      by: payload?.by ?? 'operator',
      ...(payload?.note ? { note: payload.note } : {}),
    });
  });
  setHandler(certificateRevokedSignal, (payload) => {
    commands.push({ kind: 'revoked-elsewhere', ...payload });
  });

  for (;;) {
    let renewed = false;
    for (let command = commands.shift(); command; command = commands.shift()) {
      switch (command.kind) {
        case 'issued':
          renewed = (await adopt(command.certificate)) || renewed;
          break;
        case 'revoke':
          await revokeDevice(command.reason, command.by, `revoked (${command.reason})`);
          break;
        case 'removed':
          await revokeDevice('cessationOfOperation', `mdm:${command.source}`, `removed by ${command.source}`);
          state.removed = { at: new Date().toISOString(), source: command.source };
          break;
        case 'readmit':
          await readmit(command.by);
          break;
        case 'revoked-elsewhere':
          await forget(command.serialHex);
          break;
      }
    }
    if (state.removed) {
      await condition(allHandlersFinished);
      return;
    }
    // A renewal starts a fresh history; so does a long one, when Temporal suggests it. A first
    // certificate does not: it costs nothing to keep the run that received it.
    if (renewed || workflowInfo().continueAsNewSuggested) {
      await condition(allHandlersFinished);
      return continueAsNew<typeof deviceLifecycle>({ ...input, carried: { ...state } });
    }
    await revokeSupersededDue();
    await advanceByClock();

    const wakeAt = nextDeadline();
    await condition(
      () => commands.length > 0 || workflowInfo().continueAsNewSuggested,
      wakeAt === undefined ? undefined : Math.max(wakeAt - Date.now(), 1),
    );
  }

  /**
   * Returns true when the certificate replaced an earlier one (a renewal). A certificate arrives
   * only through an admitted enrollment, so it also ends a block (the enrollment readmitted it).
   */
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
    state.blocked = undefined;
    upsertSearchAttributes([{ key: CertNotAfterKey, value: new Date(certificate.notAfter) }]);
    await setStatus('Active');
    return previous !== undefined;
  }

  /**
   * Revokes every certificate of the device that is still valid (the current one, superseded ones
   * in their grace period, and any kept without one: the database knows them all), and blocks it.
   */
  async function revokeDevice(reason: RevocationReason, by: string, why: string): Promise<void> {
    const valid = await local.listValidCertificates({ profile: input.profile, deviceId: input.deviceId });
    for (const issuingCa of [...new Set(valid.map((c) => c.issuingCa))]) {
      const serialHexes = valid.filter((c) => c.issuingCa === issuingCa).map((c) => c.serialHex);
      await revoke(issuingCa, serialHexes, reason, by);
    }
    state.superseded = [];
    state.blocked = { at: new Date().toISOString(), reason: why, by };
    await setStatus('Revoked', { admission: { blocked: { reason: why, by } } });
  }

  /** An operator lets the device enroll again. */
  async function readmit(by: string): Promise<void> {
    state.blocked = undefined;
    const status = state.status === 'Revoked' || state.status === 'Expired' ? 'Pending' : state.status;
    await setStatus(status, {
      admission: { readmitted: { by } },
      event: event('device.readmitted', { by }),
      force: true,
    });
  }

  /** One of its certificates was revoked elsewhere (by serial, or at Intune's request). */
  async function forget(serialHex: string): Promise<void> {
    state.superseded = state.superseded.filter((s) => s.certificate.serialHex !== serialHex);
    if (state.current?.serialHex === serialHex && state.status !== 'Revoked') await setStatus('Revoked');
  }

  async function revokeSupersededDue(): Promise<void> {
    const now = Date.now();
    const due = state.superseded.filter((s) => Date.parse(s.revokeAt) <= now);
    for (const { certificate } of due)
      await revoke(certificate.issuingCa, [certificate.serialHex], 'superseded', 'lifecycle');
    state.superseded = state.superseded.filter((s) => Date.parse(s.revokeAt) > now);
  }

  /** The CA records and publishes it; a definitive refusal is recorded for an operator, the life goes on. */
  async function revoke(issuingCa: string, serialHexes: string[], reason: RevocationReason, by: string) {
    try {
      await ca.revokeCertificates({
        issuingCa,
        serialHexes,
        reason,
        revokedAt: new Date().toISOString(),
        actor: by,
      });
    } catch (err) {
      // Only a definitive refusal gets here (infrastructure failures retry forever).
      await local.recordAudit({
        profile: input.profile,
        deviceId: input.deviceId,
        subject: serialHexes.join(','),
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
    }
  }

  /** Which status the clock says the current certificate is in; announces each change once. */
  async function advanceByClock(): Promise<void> {
    const current = state.current;
    if (!current || state.status === 'Revoked' || state.status === 'Expired') return;
    const now = Date.now();
    const points = timeline(current);
    const about = { serialHex: current.serialHex, notAfter: current.notAfter };
    if (now >= points.expiry) await setStatus('Expired', { event: event('certificate.expired', about) });
    else if (now >= points.overdue && state.status !== 'RenewalOverdue')
      await setStatus('RenewalOverdue', { event: event('certificate.renewal_overdue', about) });
    else if (now >= points.renewal && state.status === 'Active')
      await setStatus('RenewalDue', { event: event('certificate.renewal_due', about) });
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

  /** Status, and with it the event announcing it and any admission change, in one database write. */
  async function setStatus(
    status: PkiStatus,
    extra: Pick<Parameters<LifecycleActivities['recordDeviceStatus']>[0], 'event' | 'admission'> & {
      force?: boolean;
    } = {},
  ): Promise<void> {
    if (state.status === status && !extra.force && !extra.admission) return;
    if (state.status !== status) upsertSearchAttributes([{ key: PkiStatusKey, value: status }]);
    state.status = status;
    await local.recordDeviceStatus({
      profile: input.profile,
      deviceId: input.deviceId,
      status,
      ...(state.current ? { serialHex: state.current.serialHex } : {}),
      ...(extra.event ? { event: extra.event } : {}),
      ...(extra.admission ? { admission: extra.admission } : {}),
    });
  }

  function event(type: PkiEvent['type'], data: Record<string, unknown>): PkiEvent {
    return {
      type,
      id: `${workflowId}/${type}/${String(data.serialHex ?? new Date().toISOString())}`,
      at: new Date().toISOString(),
      profile: input.profile,
      deviceId: input.deviceId,
      workflowId,
      data,
    };
  }
}
