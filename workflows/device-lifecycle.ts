import {
  allHandlersFinished,
  condition,
  continueAsNew,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import {
  CertNotAfterKey,
  certificateIssuedSignal,
  type DeviceCertificate,
  type DeviceLifecycleInput,
  type DeviceLifecycleState,
  deviceStateQuery,
  type PkiStatus,
  PkiStatusKey,
} from './definitions.js';

/** Enough to drop duplicate signals after a continue-as-new, without growing without bound. */
const SEEN_SERIALS_KEPT = 20;

/**
 * A device's certificate life (DESIGN.md "Device lifecycle"): `device/<profile>/<deviceId>`.
 * Holds the current certificate, marks RenewalDue at the renewal point and Expired at notAfter.
 * A newer certificate (a renewal) starts the story again through continue-as-new.
 */
export async function deviceLifecycle(input: DeviceLifecycleInput): Promise<void> {
  const state: DeviceLifecycleState = input.carried ?? {
    status: 'Pending',
    current: undefined,
    seenSerials: [],
  };
  const arrivals: DeviceCertificate[] = [];

  setHandler(deviceStateQuery, () => state);
  setHandler(certificateIssuedSignal, (certificate) => {
    if (!state.seenSerials.includes(certificate.serialHex)) arrivals.push(certificate);
  });

  const setStatus = (status: PkiStatus) => {
    state.status = status;
    upsertSearchAttributes([{ key: PkiStatusKey, value: status }]);
  };

  for (;;) {
    const next = arrivals.shift();
    if (next) {
      adopt(next);
      // Each certificate starts a fresh history: its timers and signals only.
      await condition(allHandlersFinished);
      return continueAsNew<typeof deviceLifecycle>({ ...input, carried: { ...state } });
    }
    if (workflowInfo().continueAsNewSuggested) {
      await condition(allHandlersFinished);
      return continueAsNew<typeof deviceLifecycle>({ ...input, carried: { ...state } });
    }
    const wakeAt = nextDeadline();
    const arrived = await condition(
      () => arrivals.length > 0,
      wakeAt === undefined ? undefined : Math.max(wakeAt - Date.now(), 1),
    );
    if (!arrived && state.current) advanceByClock(state.current);
  }

  function adopt(certificate: DeviceCertificate) {
    // An older certificate delivered late never replaces a newer one.
    if (state.current && Date.parse(certificate.notAfter) <= Date.parse(state.current.notAfter)) {
      state.seenSerials = [...state.seenSerials, certificate.serialHex].slice(-SEEN_SERIALS_KEPT);
      return;
    }
    state.current = certificate;
    state.seenSerials = [...state.seenSerials, certificate.serialHex].slice(-SEEN_SERIALS_KEPT);
    upsertSearchAttributes([{ key: CertNotAfterKey, value: new Date(certificate.notAfter) }]);
    setStatus(Date.now() >= Date.parse(certificate.notAfter) ? 'Expired' : 'Active');
    advanceByClock(certificate);
  }

  /** Which status the clock says the current certificate is in. */
  function advanceByClock(certificate: DeviceCertificate) {
    const now = Date.now();
    if (now >= Date.parse(certificate.notAfter)) {
      if (state.status !== 'Expired') setStatus('Expired');
    } else if (now >= renewalPoint(certificate) && state.status === 'Active') {
      setStatus('RenewalDue');
    }
  }

  function nextDeadline(): number | undefined {
    const current = state.current;
    if (!current) return undefined;
    if (state.status === 'Active') return renewalPoint(current);
    if (state.status === 'RenewalDue') return Date.parse(current.notAfter);
    return undefined;
  }

  function renewalPoint(certificate: DeviceCertificate): number {
    const from = Date.parse(certificate.notBefore);
    return from + (Date.parse(certificate.notAfter) - from) * input.renewalFraction;
  }
}
