/**
 * `npm run revoke -- --profile devices --device laptop-001 --reason keyCompromise [--by alice] [--wait]`
 *
 * Signals `revoke` to the device's lifecycle workflow (`device/<profile>/<deviceId>`) on the cluster
 * of TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE, exactly what the Web UI's "Send a Signal" or
 * `temporal workflow signal --name revoke` does. The lifecycle revokes the current certificate in
 * the HSM, publishes a new CRL and shows PkiStatus="Revoked". With --wait it waits for that.
 *
 * Exit codes: 0 signalled (and, with --wait, Revoked), 2 usage, 3 no such device lifecycle,
 * 4 the lifecycle has ended, 5 --wait timed out.
 */
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { runtimeSettings } from '../config/runtime.js';
import { queryLifecycleState, signalRevoke } from '../runtime/device-lifecycle-client.js';
import { connectTemporal } from '../runtime/services.js';
import type { RevokePayload } from '../workflows/definitions.js';
import { OPERATOR_REVOCATION_REASONS } from '../workflows/definitions.js';

const usage = `usage: npm run revoke -- --profile <profile> --device <deviceId> [--reason <reason>] [--by <name>] [--wait]
  reasons: ${OPERATOR_REVOCATION_REASONS.join(', ')} (default unspecified)
  env: TEMPORAL_ADDRESS (default 127.0.0.1:7233), TEMPORAL_NAMESPACE (default default)`;

function fail(message: string, code: number): never {
  console.error(message);
  process.exit(code);
}

let values: Record<string, string | boolean | undefined>;
try {
  ({ values } = parseArgs({
    options: {
      profile: { type: 'string' },
      device: { type: 'string' },
      reason: { type: 'string', default: 'unspecified' },
      by: { type: 'string' },
      wait: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }));
} catch (err) {
  fail(`${(err as Error).message}\n${usage}`, 2);
}
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const profile = values.profile as string | undefined;
const deviceId = values.device as string | undefined;
const reason = values.reason as string;
if (!profile || !deviceId) fail(`--profile and --device are required\n${usage}`, 2);
if (!(OPERATOR_REVOCATION_REASONS as readonly string[]).includes(reason))
  fail(`unknown reason "${reason}"; one of ${OPERATOR_REVOCATION_REASONS.join(', ')}`, 2);
const by = (values.by as string | undefined) ?? `cli:${safeUser()}`;

const settings = runtimeSettings();
const client = await connectTemporal(settings);
try {
  const sent = await signalRevoke(
    client,
    { profile, deviceId },
    { reason: reason as NonNullable<RevokePayload['reason']>, by },
  );
  if (sent.outcome === 'not-found')
    fail(`no device lifecycle ${sent.workflowId} in namespace ${settings.temporalNamespace}`, 3);
  if (sent.outcome === 'ended')
    fail(`device lifecycle ${sent.workflowId} has ended (${sent.executionStatus}): nothing to revoke`, 4);
  console.log(`revoke (${reason}, by ${by}) sent to ${sent.workflowId}`);
  if (values.wait) {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const state = await queryLifecycleState(client, sent.workflowId);
      if (state.status === 'Revoked') {
        console.log(`${sent.workflowId}: Revoked (serial ${state.current?.serialHex ?? 'none'})`);
        break;
      }
      if (Date.now() > deadline)
        fail(`${sent.workflowId} still ${state.status} after 60 s; see the Web UI`, 5);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
} finally {
  await client.connection.close();
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
