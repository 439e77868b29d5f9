import { createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../config/load.js';
import { profileSchema } from '../../config/profile-types.js';
import { certificates, crls } from '../../db/schema.js';
import { toPem } from '../../pki/pem.js';
import { CRL_REFRESH_SCHEDULE_ID, intuneRevocationScheduleId } from '../../runtime/schedules.js';
import { type FakeIntune, startFakeIntune } from '../fakes/intune.js';
import { type FakeJamf, startFakeJamf } from '../fakes/jamf.js';
import { certsFromPkcs7, openssl, serialOf } from '../support/openssl.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { exec, scepclientEnroll } from '../support/scep-clients.js';
import { waitForWorkflows } from '../support/temporal.js';
import { temporalCli } from '../support/temporal-cli.js';
import { until } from '../support/until.js';

const OPERATOR_TOKEN = 'ops-token-e2e';
/** The signed device-removed webhook's own secret (never the operator token). */
const REMOVAL_SECRET = 'ops-removal-webhook-secret';
const intuneCreds = { tenantId: 'ops-tenant', clientId: 'ops-app', clientSecret: 'ops-intune-secret' };
const jamfCreds = { clientId: 'ops-jamf-client', clientSecret: 'ops-jamf-secret' };
const JAMF_HOOK = { user: 'jamf-hook', password: 'jamf-hook-pass' };

let pipeline: Pipeline;
let intune: FakeIntune;
let jamf: FakeJamf;
let work: string;

const write = (name: string, content: string | Uint8Array) => {
  const path = join(work, name);
  writeFileSync(path, content);
  return path;
};
const bearer = { authorization: `Bearer ${OPERATOR_TOKEN}` };
const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** Enrolls with micromdm's scepclient; returns the certificate file, its serial and its chain files. */
async function enroll(profile: string, cn: string, challenge = 'test-challenge') {
  const run = await scepclientEnroll({ url: `${pipeline.url}/scep/${profile}`, challenge, cn });
  expect(run.code, run.output).toBe(0);
  const ca = await fetch(`${pipeline.url}/scep/${profile}?operation=GetCACert`);
  const [, issuing, root] = await certsFromPkcs7(new Uint8Array(await ca.arrayBuffer()), work);
  return {
    certFile: write(`${profile}-${cn}.pem`, run.certificatePem!),
    issuingFile: write(`${profile}-issuing.pem`, issuing!),
    chainFile: write(`${profile}-chain.pem`, `${issuing}\n${root}\n`),
    serialHex: await serialOf(run.certificatePem!, work),
  };
}

async function certificateRow(serialHex: string) {
  const [row] = await pipeline.db.db.select().from(certificates).where(eq(certificates.serialHex, serialHex));
  return row;
}

const lifecycleEnded = (profile: string, deviceId: string) =>
  waitForWorkflows(
    pipeline.client,
    `WorkflowId="device/${profile}/${deviceId}" AND ExecutionStatus="Completed" AND PkiStatus="Revoked"`,
    1,
    30_000,
  );
const lifecycleRevoked = (profile: string, deviceId: string) =>
  waitForWorkflows(
    pipeline.client,
    `WorkflowId="device/${profile}/${deviceId}" AND ExecutionStatus="Running" AND PkiStatus="Revoked"`,
    1,
    30_000,
  );

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'e2e-operator-revocation-'));
  intune = await startFakeIntune(intuneCreds);
  jamf = await startFakeJamf(jamfCreds);
  Object.assign(process.env, {
    OPERATOR_TOKEN,
    OPS_INTUNE_SECRET: intuneCreds.clientSecret,
    OPS_JAMF_SECRET: jamfCreds.clientSecret,
    OPS_JAMF_HOOK_PASSWORD: JAMF_HOOK.password,
    OPS_REMOVAL_SECRET: REMOVAL_SECRET,
  });
  pipeline = await startPipeline({
    configure: (config) => {
      const base = config.profiles.find((p) => p.name === 'devices')!;
      // Only the profiles this file uses: the scheduled CRL refresh then touches only their CAs.
      config.profiles.splice(0, config.profiles.length, base);
      const localCa = (label: string, cn: string) => ({
        ...base.ca,
        keyLabel: `issuing-ca/${label}`,
        subject: [
          ['CN', cn],
          ['O', 'Device PKI Tests'],
        ],
      });
      config.profiles.push(
        profileSchema.parse({
          ...base,
          name: 'ops',
          ca: localCa('ops', 'Operator Test Issuing CA'),
          deviceRemovedWebhook: { secretEnv: 'OPS_REMOVAL_SECRET' },
        }),
        profileSchema.parse({
          ...base,
          name: 'op-jamf',
          mdm: {
            type: 'jamf',
            baseUrl: jamf.url,
            clientId: jamfCreds.clientId,
            clientSecretEnv: 'OPS_JAMF_SECRET',
            webhookUser: JAMF_HOOK.user,
            webhookPasswordEnv: 'OPS_JAMF_HOOK_PASSWORD',
            challengeTtlSeconds: 900,
          },
          ca: localCa('op-jamf', 'Operator Test Jamf Issuing CA'),
        }),
        profileSchema.parse({
          ...base,
          name: 'op-intune',
          mdm: {
            type: 'intune',
            tenantId: intuneCreds.tenantId,
            clientId: intuneCreds.clientId,
            clientSecretEnv: 'OPS_INTUNE_SECRET',
            authority: `${intune.url}/`,
            graphUrl: intune.url,
          },
          ca: localCa('op-intune', 'Operator Test Intune Issuing CA'),
        }),
      );
    },
  });
});
afterAll(async () => {
  await pipeline?.stop();
  await intune?.close();
  await jamf?.close();
});

describe('operator revocation', () => {
  it('an operator revokes with `temporal workflow signal`: Revoked, on the CRL, and OCSP says revoked', async () => {
    const device = await enroll('devices', 'ops-cli-laptop');
    await waitForWorkflows(
      pipeline.client,
      'WorkflowId="device/devices/ops-cli-laptop" AND PkiStatus="Active"',
      1,
      30_000,
    );
    const signal = await temporalCli(pipeline, [
      'workflow',
      'signal',
      '--workflow-id',
      'device/devices/ops-cli-laptop',
      '--name',
      'revoke',
      '--input',
      '{"reason":"keyCompromise","by":"ops"}',
    ]);
    expect(signal.code, signal.output).toBe(0);
    await lifecycleRevoked('devices', 'ops-cli-laptop');
    expect(await certificateRow(device.serialHex)).toMatchObject({
      status: 'revoked',
      revocationReason: 'keyCompromise',
    });

    const crl = await fetch(`${pipeline.url}/crl/devices.crl`);
    expect(crl.status).toBe(200);
    const crlFile = write('devices.crl.pem', toPem(new Uint8Array(await crl.arrayBuffer()), 'X509 CRL'));
    const verdict = await openssl([
      'verify',
      '-crl_check',
      '-CRLfile',
      crlFile,
      '-CAfile',
      device.chainFile,
      device.certFile,
    ]);
    expect(verdict.code).not.toBe(0);
    expect(verdict.output).toMatch(/certificate revoked/);

    const ocsp = await openssl([
      'ocsp',
      '-issuer',
      device.issuingFile,
      '-cert',
      device.certFile,
      '-url',
      `${pipeline.url}/ocsp`,
      '-CAfile',
      device.chainFile,
    ]);
    expect(ocsp.code, ocsp.output).toBe(0);
    expect(ocsp.output).toMatch(/Response verify OK/);
    expect(ocsp.output).toMatch(/: revoked/);
    expect(ocsp.output).toMatch(/Reason: keyCompromise/);
  }, 120_000);

  it('the operator API revokes, shows the device, and refuses what it should', async () => {
    const device = await enroll('ops', 'ops-api-laptop');
    await waitForWorkflows(
      pipeline.client,
      'WorkflowId="device/ops/ops-api-laptop" AND PkiStatus="Active"',
      1,
      30_000,
    );
    const url = `${pipeline.operatorUrl}/operator/devices/ops/ops-api-laptop/revoke`;
    const post = (body: string, headers: Record<string, string> = bearer) =>
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

    expect((await post('{}', {})).status).toBe(401);
    expect((await post('{}', { authorization: 'Bearer wrong' })).status).toBe(401);
    const badReason = await post('{"reason":"lostIt"}');
    expect(badReason.status).toBe(400);
    expect(((await badReason.json()) as { error: string }).error).toMatch(/reason must be one of/);
    expect((await post('{"reason":"keyCompromise","extra":1}')).status).toBe(400);
    expect((await post('not json')).status).toBe(400);
    const unknownDevice = await fetch(`${pipeline.operatorUrl}/operator/devices/ops/no-such-device/revoke`, {
      method: 'POST',
      headers: bearer,
    });
    expect(unknownDevice.status).toBe(404);
    expect(
      (
        await fetch(`${pipeline.operatorUrl}/operator/devices/nope/x/revoke`, {
          method: 'POST',
          headers: bearer,
        })
      ).status,
    ).toBe(404);

    const revoked = await post('{"reason":"privilegeWithdrawn","by":"alice"}');
    expect(revoked.status).toBe(202);
    expect(await revoked.json()).toMatchObject({ workflowId: 'device/ops/ops-api-laptop' });
    await lifecycleRevoked('ops', 'ops-api-laptop');

    const shown = await fetch(`${pipeline.operatorUrl}/operator/devices/ops/ops-api-laptop`, {
      headers: bearer,
    });
    expect(shown.status).toBe(200);
    const body = (await shown.json()) as {
      workflowId: string;
      lifecycle: { executionStatus: string; state: { status: string; current: { serialHex: string } } };
      device: { status: string } | null;
      certificates: Array<{ serialHex: string; status: string; notAfter: string; revocation: unknown }>;
    };
    expect(body.workflowId).toBe('device/ops/ops-api-laptop');
    expect(body.lifecycle.executionStatus).toBe('RUNNING');
    expect(body.lifecycle.state).toMatchObject({
      status: 'Revoked',
      current: { serialHex: device.serialHex },
    });
    expect(body.device).toMatchObject({ status: 'revoked' });
    expect(body.certificates).toEqual([
      expect.objectContaining({
        serialHex: device.serialHex,
        status: 'revoked',
        notAfter: expect.any(String),
        revocation: expect.objectContaining({ reason: 'privilegeWithdrawn' }),
      }),
    ]);
    expect(
      (await fetch(`${pipeline.operatorUrl}/operator/devices/ops/never-seen`, { headers: bearer })).status,
    ).toBe(404);
  }, 120_000);

  it('lists failed and escalated enrollments with their workflow ids', async () => {
    const refused = await scepclientEnroll({
      url: `${pipeline.url}/scep/ops`,
      challenge: 'wrong-challenge',
      cn: 'ops-refused',
    });
    expect(refused.code).not.toBe(0);
    await waitForWorkflows(pipeline.client, 'DeviceId="ops-refused" AND PkiStatus="Failed"', 1, 30_000);
    const listed = await fetch(`${pipeline.operatorUrl}/operator/enrollments?status=failed&profile=ops`, {
      headers: bearer,
    });
    expect(listed.status).toBe(200);
    const body = (await listed.json()) as {
      enrollments: Array<{ workflowId: string; deviceId: string; failure: { reason: string } | null }>;
    };
    const entry = body.enrollments.find((e) => e.deviceId === 'ops-refused');
    expect(entry?.workflowId).toMatch(/^enroll\/ops\//);
    expect(entry?.failure?.reason).toBe('challenge password does not match');

    const escalated = await fetch(`${pipeline.operatorUrl}/operator/enrollments?status=escalated`, {
      headers: bearer,
    });
    expect(escalated.status).toBe(200);
    expect(await escalated.json()).toMatchObject({ enrollments: [] });
    const bad = await fetch(`${pipeline.operatorUrl}/operator/enrollments?status=bogus`, { headers: bearer });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(
      /status must be escalated, awaiting-approval or failed/,
    );
    expect((await fetch(`${pipeline.operatorUrl}/operator/enrollments?status=failed`)).status).toBe(401);
  }, 120_000);

  it('scripts/revoke.ts revokes from the command line', async () => {
    const device = await enroll('ops', 'ops-script-laptop');
    await waitForWorkflows(
      pipeline.client,
      'WorkflowId="device/ops/ops-script-laptop" AND PkiStatus="Active"',
      1,
      30_000,
    );
    const env = {
      ...process.env,
      TEMPORAL_ADDRESS: pipeline.temporalAddress,
      TEMPORAL_NAMESPACE: pipeline.client.options.namespace,
    };
    const tsx = join(PROJECT_ROOT, 'node_modules', '.bin', 'tsx');
    const script = join(PROJECT_ROOT, 'scripts', 'revoke.ts');
    const missing = await exec(tsx, [script, '--profile', 'ops', '--device', 'nobody'], { env });
    expect(missing.code, missing.output).toBe(3);
    const badReason = await exec(tsx, [script, '--profile', 'ops', '--device', 'x', '--reason', 'nope'], {
      env,
    });
    expect(badReason.code, badReason.output).toBe(2);

    const run = await exec(
      tsx,
      [
        script,
        '--profile',
        'ops',
        '--device',
        'ops-script-laptop',
        '--reason',
        'superseded',
        '--by',
        'bob',
        '--wait',
      ],
      { env, timeout: 90_000 },
    );
    expect(run.code, run.output).toBe(0);
    expect(run.output).toMatch(/Revoked/);
    await lifecycleRevoked('ops', 'ops-script-laptop');
    expect(await certificateRow(device.serialHex)).toMatchObject({
      status: 'revoked',
      revocationReason: 'superseded',
    });
  }, 120_000);
});

describe('MDM-driven removal', () => {
  it('a Jamf webhook revokes the device (by serial number) and ends its lifecycle', async () => {
    const serial = 'C02OPSJAMF01';
    jamf.knobs.computers.add(serial);
    const made = await fetch(`${pipeline.operatorUrl}/operator/profiles/op-jamf/challenges`, {
      method: 'POST',
      headers: bearer,
    });
    expect(made.status).toBe(201);
    const { challenge } = (await made.json()) as { challenge: string };
    const device = await enroll('op-jamf', serial, challenge);
    await waitForWorkflows(
      pipeline.client,
      `WorkflowId="device/op-jamf/${serial}" AND PkiStatus="Active"`,
      1,
      30_000,
    );

    const event = JSON.stringify({
      webhook: {
        id: 3,
        name: 'device-pki removal',
        webhookEvent: 'MobileDeviceUnEnrolled',
        eventTimestamp: Date.now(),
      },
      event: { serialNumber: serial, udid: '00008030-000A1D2E0C38802E', deviceName: 'test iPad' },
    });
    const send = (authorization: string, body = event) =>
      fetch(`${pipeline.operatorUrl}/mdm/op-jamf/device-removed`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/json' },
        body,
      });
    const jamfAuth = basic(JAMF_HOOK.user, JAMF_HOOK.password);
    expect((await send(basic(JAMF_HOOK.user, 'wrong'))).status).toBe(401);
    // The operator token is not the integration's credential.
    expect((await send(`Bearer ${OPERATOR_TOKEN}`)).status).toBe(401);
    expect((await send(jamfAuth, '{"webhook":{}}')).status).toBe(400);
    // Only the removal event Jamf documents acts; a check-in about our device changes nothing.
    const checkIn = await send(
      jamfAuth,
      JSON.stringify({
        webhook: { id: 3, webhookEvent: 'ComputerCheckIn', eventTimestamp: Date.now() },
        event: { computer: { serialNumber: serial } },
      }),
    );
    expect(checkIn.status).toBe(200);
    expect(await checkIn.json()).toMatchObject({ ignored: 'ComputerCheckIn is not a device removal event' });
    expect((await certificateRow(device.serialHex))?.status).toBe('valid');
    const unknown = await send(
      jamfAuth,
      JSON.stringify({
        webhook: { id: 3, webhookEvent: 'MobileDeviceUnEnrolled', eventTimestamp: Date.now() },
        event: { serialNumber: 'NOPE' },
      }),
    );
    expect(unknown.status).toBe(404);
    const stale = await send(
      jamfAuth,
      JSON.stringify({
        webhook: { id: 3, webhookEvent: 'MobileDeviceUnEnrolled', eventTimestamp: Date.now() - 10 * 60_000 },
        event: { serialNumber: serial },
      }),
    );
    expect(stale.status).toBe(401);
    expect((await certificateRow(device.serialHex))?.status).toBe('valid');

    const removed = await send(jamfAuth);
    expect(removed.status).toBe(202);
    expect(await removed.json()).toMatchObject({ workflowId: `device/op-jamf/${serial}` });
    await lifecycleEnded('op-jamf', serial);
    expect(await certificateRow(device.serialHex)).toMatchObject({
      status: 'revoked',
      revocationReason: 'cessationOfOperation',
    });
    // The same event again is a replay: refused, nothing more happens.
    const again = await send(jamfAuth);
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: string }).error).toMatch(/replay refused/);
  }, 120_000);

  it('an HMAC-signed removal revokes the device; its replay, later, revokes nothing', async () => {
    const device = await enroll('ops', 'ops-hmac-laptop');
    await waitForWorkflows(
      pipeline.client,
      'WorkflowId="device/ops/ops-hmac-laptop" AND PkiStatus="Active"',
      1,
      30_000,
    );
    const signed = (
      body: string,
      key = REMOVAL_SECRET,
      at = Math.floor(Date.now() / 1000),
      delivery = randomUUID(),
    ) => ({
      'content-type': 'application/json',
      'X-PKI-Timestamp': String(at),
      'X-PKI-Delivery': delivery,
      'X-PKI-Signature': createHmac('sha256', key).update(`${at}.${delivery}.${body}`).digest('hex'),
    });
    const send = (body: string, headers: Record<string, string>) =>
      fetch(`${pipeline.operatorUrl}/mdm/ops/device-removed`, { method: 'POST', headers, body });
    const body = JSON.stringify({ deviceId: 'ops-hmac-laptop', source: 'mdm-sync' });
    // Signed for another body, unsigned, or signed with the operator token (which used to work).
    expect(
      (await send(body, { ...signed('{"deviceId":"someone-else"}'), 'content-type': 'application/json' }))
        .status,
    ).toBe(401);
    const forged = signed(body);
    expect(
      (await send(body, { ...forged, 'X-PKI-Signature': signed('{"deviceId":"x"}')['X-PKI-Signature'] }))
        .status,
    ).toBe(401);
    expect((await send(body, { 'content-type': 'application/json' })).status).toBe(401);
    expect((await send(body, signed(body, OPERATOR_TOKEN))).status).toBe(401);
    // A capture from ten minutes ago: outside the window.
    expect((await send(body, signed(body, REMOVAL_SECRET, Math.floor(Date.now() / 1000) - 600))).status).toBe(
      401,
    );
    const unknown = JSON.stringify({ deviceId: 'ops-no-such-device' });
    expect((await send(unknown, signed(unknown))).status).toBe(404);
    const malformed = JSON.stringify({ device: 'x' });
    expect((await send(malformed, signed(malformed))).status).toBe(400);
    expect((await certificateRow(device.serialHex))?.status).toBe('valid');

    const captured = signed(body);
    expect((await send(body, captured)).status).toBe(202);
    await lifecycleEnded('ops', 'ops-hmac-laptop');
    expect(await certificateRow(device.serialHex)).toMatchObject({
      status: 'revoked',
      revocationReason: 'cessationOfOperation',
    });

    // An operator readmits it; it enrolls again. The attacker replays the captured removal.
    const readmit = await fetch(`${pipeline.operatorUrl}/operator/devices/ops/ops-hmac-laptop/readmit`, {
      method: 'POST',
      headers: { ...bearer, 'content-type': 'application/json' },
      body: '{"by":"alice","note":"device reissued to Bob"}',
    });
    expect(readmit.status).toBe(202);
    await waitForWorkflows(
      pipeline.client,
      'WorkflowId="device/ops/ops-hmac-laptop" AND ExecutionStatus="Running" AND PkiStatus="Pending"',
      1,
      30_000,
    );
    const again = await enroll('ops', 'ops-hmac-laptop');
    const replay = await send(body, captured);
    expect(replay.status).toBe(409);
    expect(((await replay.json()) as { error: string }).error).toMatch(/replay refused/);
    await new Promise((r) => setTimeout(r, 1000));
    expect((await certificateRow(again.serialHex))?.status).toBe('valid');
    expect(
      (await fetch(`${pipeline.operatorUrl}/mdm/nope/device-removed`, { method: 'POST', body: '{}' })).status,
    ).toBe(404);
  }, 120_000);
});

describe('scheduled revocation work', () => {
  let intuneDevice: Awaited<ReturnType<typeof enroll>>;

  it('the Intune revocation schedule revokes what Intune asks for and answers every request', async () => {
    intuneDevice = await enroll('op-intune', 'ops-intune-laptop');
    await waitForWorkflows(
      pipeline.client,
      'WorkflowId="device/op-intune/ops-intune-laptop" AND PkiStatus="Active"',
      1,
      30_000,
    );
    const [success] = intune.callsTo('successNotification').slice(-1);
    const serialNumber = (success!.body as { notification: { certificateSerialNumber: string } }).notification
      .certificateSerialNumber;
    expect(serialNumber.toLowerCase()).toBe(intuneDevice.serialHex);

    intune.revocationQueue.push(
      { requestContext: 'ctx-revoke-1', serialNumber, issuerName: 'x', caConfiguration: 'op-intune' },
      {
        requestContext: 'ctx-unknown-1',
        serialNumber: '0BADC0FFEE',
        issuerName: 'x',
        caConfiguration: 'op-intune',
      },
    );
    await pipeline.client.schedule.getHandle(intuneRevocationScheduleId('op-intune')).trigger();
    const results = await until('Intune revocation results', async () =>
      intune.revocationResults.length >= 2
        ? (intune.revocationResults as Array<Record<string, unknown>>)
        : undefined,
    );
    expect(results).toEqual(
      expect.arrayContaining([
        { requestContext: 'ctx-revoke-1', succeeded: true, errorCode: '0', errorMessage: '' },
        expect.objectContaining({ requestContext: 'ctx-unknown-1', succeeded: false, errorCode: '4004' }),
      ]),
    );
    expect(await certificateRow(intuneDevice.serialHex)).toMatchObject({
      status: 'revoked',
      revocationReason: 'cessationOfOperation',
    });
    await lifecycleRevoked('op-intune', 'ops-intune-laptop');

    // Intune hands the same request out again (our upload was lost): still a success; a new request
    // for the revoked certificate is a conflict (4005).
    intune.revocationQueue.push(
      { requestContext: 'ctx-revoke-1', serialNumber, issuerName: 'x', caConfiguration: 'op-intune' },
      { requestContext: 'ctx-revoke-2', serialNumber, issuerName: 'x', caConfiguration: 'op-intune' },
    );
    await pipeline.client.schedule.getHandle(intuneRevocationScheduleId('op-intune')).trigger();
    const more = await until('second round of results', async () =>
      intune.revocationResults.length >= 4
        ? (intune.revocationResults.slice(2) as Array<Record<string, unknown>>)
        : undefined,
    );
    expect(more).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ requestContext: 'ctx-revoke-1', succeeded: true, errorCode: '0' }),
        expect.objectContaining({ requestContext: 'ctx-revoke-2', succeeded: false, errorCode: '4005' }),
      ]),
    );
  }, 120_000);

  it('the CRL refresh schedule re-signs a CRL that is about to go stale', async () => {
    const issuingCa = 'issuing-ca/op-intune';
    const soon = new Date(Date.now() + 3_600_000);
    await pipeline.db.db.update(crls).set({ nextUpdate: soon }).where(eq(crls.issuingCa, issuingCa));
    const [before] = await pipeline.db.db.select().from(crls).where(eq(crls.issuingCa, issuingCa));
    expect(before?.crlNumber).toBeGreaterThan(0);
    // Not due: a CA whose CRL is fresh keeps its number.
    const [opsBefore] = await pipeline.db.db.select().from(crls).where(eq(crls.issuingCa, 'issuing-ca/ops'));

    await pipeline.client.schedule.getHandle(CRL_REFRESH_SCHEDULE_ID).trigger();
    const after = await until('a re-signed CRL', async () => {
      const [row] = await pipeline.db.db.select().from(crls).where(eq(crls.issuingCa, issuingCa));
      return row && row.crlNumber > before!.crlNumber ? row : undefined;
    });
    expect(after.nextUpdate.getTime()).toBeGreaterThan(Date.now() + 20 * 3_600_000);
    await waitForWorkflows(
      pipeline.client,
      'WorkflowType="refreshCrls" AND ExecutionStatus="Completed"',
      1,
      30_000,
    );
    const [opsAfter] = await pipeline.db.db.select().from(crls).where(eq(crls.issuingCa, 'issuing-ca/ops'));
    expect(opsAfter?.crlNumber).toBe(opsBefore?.crlNumber);

    // The re-signed CRL still lists the certificate Intune had revoked.
    const served = await fetch(`${pipeline.url}/crl/op-intune.crl`);
    const crlFile = write('op-intune.crl.pem', toPem(new Uint8Array(await served.arrayBuffer()), 'X509 CRL'));
    const verdict = await openssl([
      'verify',
      '-crl_check',
      '-CRLfile',
      crlFile,
      '-CAfile',
      intuneDevice.chainFile,
      intuneDevice.certFile,
    ]);
    expect(verdict.output).toMatch(/certificate revoked/);
  }, 120_000);
});
