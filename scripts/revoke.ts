/**
 * `npm run revoke -- --profile devices --device laptop-001 --reason keyCompromise [--by alice] [--wait]`
 * `npm run revoke -- --serial 4f3a... [--issuing-ca issuing-ca/devices] --reason keyCompromise [--wait]`
 *
 * A device: signals `revoke` to its lifecycle workflow (`device/<profile>/<deviceId>`) on the cluster
 * of TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE, exactly what the Web UI's "Send a Signal" or
 * `temporal workflow signal --name revoke` does: every valid certificate of the device is revoked,
 * a new CRL is published, the device is blocked until readmitted, and PkiStatus="Revoked".
 * A serial: revokes that one certificate (workflow `revoke/<issuingCa>/<serial>`), whether or not a
 * lifecycle holds it; the certificate is looked up in DATABASE_URL. Both are idempotent.
 *
 * Exit codes: 0 done (with --wait: Revoked), 2 usage, 3 no such device lifecycle or certificate,
 * 4 the lifecycle has ended, 5 --wait timed out.
 */
import { userInfo } from 'node:os';
import { eq } from 'drizzle-orm';
import { findProfile, loadPkiConfig } from '../config/load.js';
import { runtimeSettings } from '../config/runtime.js';
import { openDatabase } from '../db/client.js';
import { certificates } from '../db/schema.js';
import { queryLifecycleState, signalRevoke } from '../runtime/device-lifecycle-client.js';
import { revokeBySerial } from '../runtime/revocation-client.js';
import { connectTemporal, openTokens, payloadCodecOf } from '../runtime/services.js';
import type { RevokePayload } from '../workflows/definitions.js';
import { OPERATOR_REVOCATION_REASONS } from '../workflows/definitions.js';
import { fail, parseCommandLine } from './cli.js';

const usage = `usage: npm run revoke -- --profile <profile> --device <deviceId> [--reason <reason>] [--by <name>] [--wait]
       npm run revoke -- --serial <hex> [--issuing-ca <label>] [--reason <reason>] [--by <name>] [--wait]
  reasons: ${OPERATOR_REVOCATION_REASONS.join(', ')} (default unspecified)
  env: TEMPORAL_ADDRESS (default 127.0.0.1:7233), TEMPORAL_NAMESPACE (default default)`;

const values = parseCommandLine(
  {
    profile: { type: 'string' },
    device: { type: 'string' },
    serial: { type: 'string' },
    'issuing-ca': { type: 'string' },
    reason: { type: 'string', default: 'unspecified' },
    by: { type: 'string' },
    wait: { type: 'boolean', default: false },
  },
  usage,
);
const profile = values.profile as string | undefined;
const deviceId = values.device as string | undefined;
const serial = values.serial as string | undefined;
const reason = values.reason as string;
if (!serial && (!profile || !deviceId))
  fail(`--profile and --device, or --serial, are required\n${usage}`, 2);
if (!(OPERATOR_REVOCATION_REASONS as readonly string[]).includes(reason))
  fail(`unknown reason "${reason}"; one of ${OPERATOR_REVOCATION_REASONS.join(', ')}`, 2);
const by = (values.by as string | undefined) ?? `cli:${safeUser()}`;

const settings = runtimeSettings();
// Payloads are encrypted (a query's answer too): the data token's key opens them.
const tokens = await openTokens(settings, ['data']);
const client = await connectTemporal(settings, payloadCodecOf(tokens.get('data')));
if (serial) {
  try {
    await revokeSerial(serial, values['issuing-ca'] as string | undefined);
  } finally {
    await client.connection.close();
    await tokens.close();
  }
  process.exit(0);
}
try {
  const sent = await signalRevoke(
    client,
    { profile: profile!, deviceId: deviceId! },
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
  await tokens.close();
}

async function revokeSerial(raw: string, issuingCa: string | undefined): Promise<void> {
  const serialHex = raw
    .replaceAll(':', '')
    .toLowerCase()
    .replace(/^0+(?=.)/, '');
  if (!/^[0-9a-f]{1,64}$/.test(serialHex)) fail(`--serial ${raw} is not hex`, 2);
  const database = await openDatabase({ url: settings.databaseUrl, pgliteDir: settings.pgliteDir });
  let rows: Array<{ issuingCa: string; serialHex: string; profile: string; deviceId: string }>;
  try {
    rows = (
      await database.db
        .select({
          issuingCa: certificates.issuingCa,
          serialHex: certificates.serialHex,
          profile: certificates.profile,
          deviceId: certificates.deviceId,
        })
        .from(certificates)
        .where(eq(certificates.serialHex, serialHex))
    ).filter((r) => issuingCa === undefined || r.issuingCa === issuingCa);
  } finally {
    await database.close();
  }
  if (rows.length === 0) fail(`no certificate with serial ${serialHex} issued by this product`, 3);
  if (rows.length > 1)
    fail(`serial ${serialHex} exists under ${rows.map((r) => r.issuingCa).join(', ')}: pass --issuing-ca`, 2);
  const row = rows[0]!;
  const profile = findProfile(loadPkiConfig(), row.profile);
  if (!profile) fail(`the certificate's profile ${row.profile} is not configured`, 2);
  const done = await revokeBySerial(
    client,
    profile,
    row,
    { reason: reason as NonNullable<RevokePayload['reason']>, by },
    values.wait ? 60_000 : 10_000,
  );
  if (done.outcome === 'pending') {
    console.log(`${done.workflowId} is still running (the CA host is away?); see the Web UI`);
    if (values.wait) process.exit(5);
    return;
  }
  const { revokedAt, alreadyRevoked, lifecycleNotified } = done.result;
  console.log(
    `${serialHex} (${row.issuingCa}, ${row.profile}/${row.deviceId}): Revoked at ${revokedAt}` +
      `${alreadyRevoked ? ' (already before)' : ''}${lifecycleNotified ? '; its lifecycle was told' : ''}`,
  );
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
