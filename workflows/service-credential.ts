/**
 * Workflow `service/<name>/credential`: the life of a service identity's key and certificate (e.g.
 * the Entra ID client certificate of an Intune profile), like a device's lifecycle but for the
 * product itself. One run per generation (continue-as-new):
 *
 *   active and not due? sleep until its renewal point (notAfter - renewBefore)
 *   → new key in the data token → certificate from the internal profile's CA (pki-hsm)
 *   → RegistrationNeeded: event to operators, wait for signal `registered`
 *   → switch the adapters to it (the previous one becomes retiring)
 *   → after the overlap, the previous one is retired → continue-as-new.
 *
 * The first run makes the first credential the same way: nothing signs with a key that no operator
 * has registered.
 */
import {
  condition,
  continueAsNew,
  log,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { ServiceCredentialActivities, ServiceCredentialCaActivities } from './activities.js';
import {
  HSM_TASK_QUEUE,
  PkiProfileKey,
  type PkiStatus,
  PkiStatusKey,
  registeredSignal,
  type ServiceCredentialInput,
  type ServiceCredentialState,
  serviceCredentialStateQuery,
} from './definitions.js';

const retry = { initialInterval: '1 second', maximumInterval: '1 minute' } as const;
const acts = proxyActivities<ServiceCredentialActivities>({ startToCloseTimeout: '1 minute', retry });
const ca = proxyActivities<ServiceCredentialCaActivities>({
  taskQueue: HSM_TASK_QUEUE,
  startToCloseTimeout: '1 minute',
  retry,
});

/** Workflow timers past this are split (Temporal caps a timer at ~100 years; also keeps histories short). */
const MAX_SLEEP_MS = 30 * 86_400_000;

export async function serviceCredential(input: ServiceCredentialInput): Promise<void> {
  const { name } = input;
  const state: ServiceCredentialState = { status: 'Pending' };
  const registered: Array<number | undefined> = [];
  setHandler(registeredSignal, (payload) => {
    registered.push(payload?.generation);
  });
  setHandler(serviceCredentialStateQuery, () => state);
  const setStatus = (status: PkiStatus) => {
    state.status = status;
    upsertSearchAttributes([
      { key: PkiProfileKey, value: input.profile },
      { key: PkiStatusKey, value: status },
    ]);
  };

  const status = await acts.serviceCredentialStatus({ name });
  if (status.active) {
    state.activeGeneration = status.active.generation;
    state.renewAt = status.active.renewAt;
    setStatus('Active');
    // A run that stopped during an overlap finishes it first.
    await retireAfter(name, status.retiring, 0);
    if (!status.pending) await sleepUntil(status.active.renewAt);
  }

  const { generation } = await acts.prepareServiceKey({ name });
  state.pendingGeneration = generation;
  await ca.issueServiceCertificate({ name, generation });
  await acts.requestServiceRegistration({ name, generation });
  setStatus('RegistrationNeeded');
  // No deadline: the current certificate keeps working until it expires; the event reached operators.
  await condition(() => registered.some((g) => g === undefined || g === generation));
  log.info('service credential registered', { name, generation });

  const activated = await acts.activateServiceCredential({ name, generation });
  state.activeGeneration = generation;
  state.pendingGeneration = undefined;
  state.renewAt = activated.renewAt;
  setStatus('Active');
  // The previous certificate stays registered (and so usable) for the overlap, then is retired.
  const { retiring } = await acts.serviceCredentialStatus({ name });
  await retireAfter(name, retiring, activated.overlapSeconds * 1000);
  await continueAsNew<typeof serviceCredential>(input);
}

async function retireAfter(name: string, generations: number[], delayMs: number): Promise<void> {
  if (generations.length === 0) return;
  if (delayMs > 0) await sleep(delayMs);
  await acts.retireServiceCredentials({ name, generations });
}

async function sleepUntil(iso: string): Promise<void> {
  for (;;) {
    const left = Date.parse(iso) - Date.now();
    if (left <= 0) return;
    await sleep(Math.min(left, MAX_SLEEP_MS));
  }
}
