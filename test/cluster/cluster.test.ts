import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkCertificateRecords, runningEnrollments } from '../../bench/accounting.js';
import type { EnrollmentRecord } from '../../bench/enrollment-load.js';
import {
  type DeviceKey,
  generateDeviceKeys,
  openDeviceKeyToken,
  ScepClient,
} from '../../bench/scep-client/index.js';
import { PROJECT_ROOT } from '../../config/load.js';
import { openDatabase } from '../../db/client.js';
import type { ReadinessReport } from '../../runtime/readiness.js';
import {
  clusterDown,
  clusterStatus,
  clusterUp,
  destroyCluster,
  killClusterProcess,
  productDatabaseUrl,
  restartClusterProcess,
  restartTemporalServer,
} from '../../scripts/cluster/control.js';
import { logTail } from '../../scripts/cluster/supervisor.js';
import { type ClusterSettings, clusterSecrets, clusterSettings } from '../../scripts/cluster/topology.js';
import { deviceWorkflowId, PkiStatusKey } from '../../workflows/definitions.js';
import { certsFromPkcs7, openssl } from '../support/openssl.js';
import { exec, scepclientEnroll } from '../support/scep-clients.js';
import { waitForWorkflows } from '../support/temporal.js';
import { until } from '../support/until.js';

/**
 * The production shape as separate OS processes (scripts/cluster.ts): a Temporal server on Postgres, two API
 * replicas, two `pki` workers, one `pki-hsm` worker. Brought up once, in a throwaway state dir, on throwaway
 * databases and shifted ports, so a developer's own cluster (.data/cluster, ports 7333/8081/...) is never
 * touched.
 */

const run = `${Date.now().toString(36)}${process.pid}`;
const work = mkdtempSync(join(tmpdir(), 'cluster-test-'));
/** The same settings as environment variables: the `npm run cluster` CLI must see this cluster too. */
/**
 * The shipped profiles plus `short`: two-minute certificates due for renewal after one, so a lifecycle
 * timer fires within the test, across a restart of the whole cluster.
 */
const pkiConfigFile = join(work, 'pki.json');
{
  const shipped = JSON.parse(readFileSync(join(PROJECT_ROOT, 'config', 'pki.json'), 'utf8'));
  const devices = shipped.profiles.find((p: { name: string }) => p.name === 'devices');
  shipped.profiles.push({
    ...devices,
    name: 'short',
    mdm: { type: 'static-challenge', challenge: 'short-challenge' },
    ca: { ...devices.ca, keyLabel: 'issuing-ca/short', subject: [['CN', 'Cluster Test Issuing CA (short)']] },
    template: { ...devices.template, validitySeconds: 120, backdateSeconds: 0 },
    renewalFraction: 0.5,
  });
  writeFileSync(pkiConfigFile, JSON.stringify(shipped, null, 2));
}
const clusterEnv = {
  PKI_CONFIG: pkiConfigFile,
  CLUSTER_STATE_DIR: join(work, 'state'),
  CLUSTER_PORT_OFFSET: '20',
  CLUSTER_PKI_DATABASE: `pki_ct_${run}`,
  CLUSTER_TEMPORAL_DATABASE: `temporal_ct_${run}`,
  CLUSTER_TEMPORAL_VISIBILITY_DATABASE: `temporal_vis_ct_${run}`,
};
const settings: ClusterSettings = clusterSettings({}, { ...process.env, ...clusterEnv });
const challenge = 'dev-challenge';
const profile = 'devices';
const log = (line: string) => console.log(`[cluster test] ${line}`);

let client: Client;
let sql: postgres.Sql;
const enrolled: Array<{ cn: string; port: number; pem: string }> = [];

async function enroll(cn: string, port: number): Promise<void> {
  const result = await scepclientEnroll({
    url: `http://127.0.0.1:${port}/scep/${profile}`,
    challenge,
    cn,
    timeoutMs: 90_000,
  });
  expect(result.code, `${cn} via :${port}\n${result.output}`).toBe(0);
  expect(result.certificatePem).toContain('BEGIN CERTIFICATE');
  enrolled.push({ cn, port, pem: result.certificatePem! });
}

/** Set in this process before `up`: no cluster process may inherit it. */
const CANARY = 'DEVICE_PKI_CLUSTER_TEST_CANARY';

beforeAll(async () => {
  process.env[CANARY] = 'must-not-leak';
  const report = await clusterUp(settings, log);
  log(`up in ${report.seconds.toFixed(1)} s: ${JSON.stringify(report.phases)}`);
  const connection = await Connection.connect({ address: `127.0.0.1:${settings.ports.frontend}` });
  client = new Client({ connection, namespace: settings.namespace });
  sql = postgres(productDatabaseUrl(settings), { max: 2, onnotice: () => {} });
});

afterAll(async () => {
  await sql?.end();
  await client?.connection.close();
  await destroyCluster(settings, log);
  rmSync(work, { recursive: true, force: true });
});

describe('the cluster as separate processes', () => {
  it('enrolls real scepclient devices through both API replicas', async () => {
    const [api1, api2] = settings.ports.api as [number, number];
    await Promise.all([
      enroll('cluster-a1', api1),
      enroll('cluster-b1', api2),
      enroll('cluster-a2', api1),
      enroll('cluster-b2', api2),
    ]);

    // Each replica's GetCACert chain verifies every certificate, whichever replica issued it.
    for (const port of settings.ports.api) {
      const response = await fetch(`http://127.0.0.1:${port}/scep/${profile}?operation=GetCACert`);
      expect(response.status).toBe(200);
      const chain = await certsFromPkcs7(new Uint8Array(await response.arrayBuffer()), work);
      expect(chain).toHaveLength(3);
      const chainFile = join(work, `chain-${port}.pem`);
      writeFileSync(chainFile, chain.join('\n'));
      for (const { cn, pem } of enrolled) {
        const file = join(work, `${cn}.pem`);
        writeFileSync(file, pem);
        const verify = await openssl(['verify', '-CAfile', chainFile, file]);
        expect(verify.output, `${cn} against :${port}'s chain`).toContain(`${file}: OK`);
      }
    }
  });

  it('stored exactly one certificate per transaction, and every enrollment workflow Completed', async () => {
    const cns = enrolled.map((e) => e.cn);
    const rows = await sql<Array<{ id: string; status: string; certificates: number }>>`
      SELECT e.id, e.status, count(c.serial_hex)::int AS certificates
      FROM enrollments e LEFT JOIN certificates c ON c.enrollment_id = e.id
      WHERE e.device_id = ANY(${cns})
      GROUP BY e.id, e.status`;
    expect(rows).toHaveLength(cns.length);
    for (const row of rows) {
      expect(row.status, row.id).toBe('issued');
      expect(row.certificates, row.id).toBe(1);
    }
    const completed = await waitForWorkflows(
      client,
      `WorkflowType="enrollment" AND ExecutionStatus="Completed"`,
      cns.length,
      30_000,
    );
    expect(completed.map((w) => w.workflowId).sort()).toEqual(rows.map((r) => r.id).sort());
    const others = [];
    for await (const w of client.workflow.list({
      query: `WorkflowType="enrollment" AND ExecutionStatus!="Completed"`,
    }))
      others.push(w.workflowId);
    expect(others).toEqual([]);
  });

  it('lists every process with its port and the SCEP URLs in `npm run cluster -- status`', async () => {
    const result = await exec(process.execPath, ['--import', 'tsx', 'scripts/cluster.ts', 'status'], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, ...clusterEnv },
      timeout: 60_000,
    });
    expect(result.code, result.output).toBe(0);
    const names = ['temporal', 'api-1', 'api-2', 'worker-pki-1', 'worker-pki-2', 'worker-pki-hsm-1'];
    if (settings.ui) names.push('temporal-ui');
    for (const name of names)
      expect(result.output).toMatch(new RegExp(`^${name}\\s+\\S+\\s+\\d+\\s+yes`, 'm'));
    for (const port of settings.ports.api) {
      expect(result.output).toMatch(new RegExp(`^api-\\d\\s+api\\s+\\d+\\s+yes\\s+yes\\s+${port}\\s`, 'm'));
      expect(result.output).toContain(`http://127.0.0.1:${port}/scep/${profile}`);
    }
    expect(result.output).toContain(`127.0.0.1:${settings.ports.frontend}`);
  });

  it("gives each process only its own role's credentials", async () => {
    const status = await clusterStatus(settings);
    const environ = (name: string): Map<string, string> => {
      const pid = status.processes.find((p) => p.name === name)?.pid;
      if (!pid) throw new Error(`${name} is not running`);
      const entries = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
      return new Map(entries.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
    };
    const api = environ('api-1');
    const pki = environ('worker-pki-1');
    const hsm = environ('worker-pki-hsm-1');
    const temporal = environ('temporal');
    // The SO PIN is the key ceremony's (provisioning) alone; the operator token is the API's alone.
    for (const env of [api, pki, hsm, temporal]) expect(env.has('HSM_SO_PIN')).toBe(false);
    expect(api.get('OPERATOR_TOKEN')).toBe(clusterSecrets(settings).operatorToken);
    for (const env of [pki, hsm, temporal]) expect(env.has('OPERATOR_TOKEN')).toBe(false);
    // Key custody: each role holds the PINs of its own tokens only.
    const pinsOf = (env: Map<string, string>) =>
      [...env.keys()].filter((k) => /^HSM_\w+_PIN$/.test(k)).sort();
    expect(pinsOf(api)).toEqual(['HSM_DATA_PIN', 'HSM_RA_PIN']);
    expect(pinsOf(pki)).toEqual(['HSM_DATA_PIN']);
    expect(pinsOf(hsm)).toEqual(['HSM_CA_PIN', 'HSM_DATA_PIN']);
    // The database as the application role; the owner's URL is provisioning's alone.
    for (const env of [api, pki, hsm]) {
      expect(new URL(env.get('DATABASE_URL')!).username).toBe(`${settings.databases.pki}_app`);
      expect(env.has('DATABASE_MIGRATION_URL')).toBe(false);
    }
    // The Temporal server gets no product configuration at all.
    for (const key of ['HSM_RA_PIN', 'HSM_CA_PIN', 'HSM_DATA_PIN', 'DATABASE_URL', 'SOFTHSM2_CONF'])
      expect(temporal.has(key), key).toBe(false);
    // Nothing leaks from the environment of whoever ran `up` (it set a canary before).
    for (const env of [api, pki, hsm, temporal]) expect(env.has(CANARY)).toBe(false);
    for (const env of [api, pki, hsm])
      expect(env.get('DATABASE_URL')).toMatch(new RegExp(`/${settings.databases.pki}$`));
    expect(api.get('API_PORT')).toBe(String(settings.ports.api[0]));
  });

  it('survives kill -9 of a pki worker and of the Temporal server, and a second `up` starts no duplicates', async () => {
    const killed = await killClusterProcess(settings, 'worker-pki-1');
    let status = await clusterStatus(settings);
    expect(status.processes.find((p) => p.name === 'worker-pki-1')?.alive).toBe(false);
    const restarted = await restartClusterProcess(settings, 'worker-pki-1', log);
    expect(restarted.pid).not.toBe(killed.pid);

    const before = (await clusterStatus(settings)).processes.find((p) => p.name === 'temporal')!;
    const server = await restartTemporalServer(settings, { kill: true }, log);
    expect(server.pid).not.toBe(before.pid);
    await enroll('cluster-after-restart', settings.ports.api[1]!);

    const pids = new Map((await clusterStatus(settings)).processes.map((p) => [p.name, p.pid]));
    await clusterUp(settings, log);
    status = await clusterStatus(settings);
    for (const p of status.processes) expect(p.pid, p.name).toBe(pids.get(p.name));
  });

  it('under load through both replicas, kill -9 of a pki worker, the pki-hsm worker, an API replica and the Temporal server, and a Postgres restart: nothing lost, nothing issued twice', async () => {
    const token = await openDeviceKeyToken(join(work, 'devices-hsm'), 'cluster-devices');
    const keys = await generateDeviceKeys(8, token);
    const replicas = await Promise.all(
      settings.ports.api.map((port) =>
        ScepClient.connect({
          url: `http://127.0.0.1:${port}/scep/${profile}`,
          requestTimeoutMs: 30_000,
          pollIntervalMs: 1000,
          pollTimeoutMs: 120_000,
        }),
      ),
    );
    const prefix = `load-${run}-`;
    const records: EnrollmentRecord[] = [];
    /** When each device started and got its answer: what a fault did to latency. */
    const spans: Array<{ start: number; end: number }> = [];
    const answers = new Map<string, number>();
    let errorsRetried = 0;
    let faultsDone = false;
    let sent = 0;

    /**
     * One device, as a real one behaves behind a load balancer: an error (connection refused or
     * reset, a 5xx) is retried with the same transaction, on whichever replica answers next; PENDING
     * is polled (the client does it). It gives up only after 4 minutes.
     */
    const device = async (n: number) => {
      const deviceId = `${prefix}${n}`;
      const key: DeviceKey = keys[n % keys.length]!;
      const transactionId = `${run}-${String(n).padStart(6, '0')}`;
      const start = Date.now();
      const deadline = start + 240_000;
      for (let attempt = 0; ; attempt++) {
        const client = replicas[(n + attempt) % replicas.length]!;
        const result = await client.enroll({
          key,
          commonName: deviceId,
          challengePassword: challenge,
          transactionId,
        });
        answers.set(result.status, (answers.get(result.status) ?? 0) + 1);
        if (result.status === 'ERROR' && Date.now() < deadline) {
          errorsRetried++;
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        spans.push({ start, end: Date.now() });
        records.push({
          deviceId,
          transactionId,
          status: result.status,
          ...(result.status === 'SUCCESS' ? { serialHex: result.serialHex } : {}),
        });
        return;
      }
    };
    // Six devices at a time, three per replica, until the faults are over and at least 200 were sent.
    const lanes = Array.from({ length: 6 }, async () => {
      while (!faultsDone || sent < 200) await device(sent++);
    });

    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const faults: Array<{ what: string; from: number; to: number }> = [];
    const fault = async (what: string, run: () => Promise<unknown>) => {
      const from = Date.now();
      await run();
      faults.push({ what, from, to: Date.now() });
      log(`${what}: done after ${Date.now() - from} ms, ${sent} requests sent so far`);
    };
    /** kill -9, down for a while, started again (and ready). */
    const crash = async (name: string, downMs: number) => {
      await killClusterProcess(settings, name);
      await pause(downMs);
      await restartClusterProcess(settings, name, log);
    };
    const pgVersion = readdirSync('/etc/postgresql')[0]!;
    const script = (async () => {
      await pause(5_000);
      await fault('kill -9 worker-pki-1, restart', () => crash('worker-pki-1', 2_000));
      await pause(3_000);
      await fault('kill -9 worker-pki-hsm-1, 10 s down, restart', () => crash('worker-pki-hsm-1', 10_000));
      await pause(3_000);
      await fault('kill -9 api-1, restart', () => crash('api-1', 2_000));
      await pause(3_000);
      await fault('kill -9 temporal, restart', () => restartTemporalServer(settings, { kill: true }, log));
      await pause(3_000);
      await fault('pg_ctlcluster restart', async () => {
        const restarted = await exec(
          'pg_ctlcluster',
          ['--skip-systemctl-redirect', pgVersion, 'main', 'restart'],
          {
            timeout: 60_000,
          },
        );
        expect(restarted.code, restarted.output).toBe(0);
      });
      await pause(3_000);
    })().finally(() => {
      faultsDone = true;
    });
    await Promise.all([script, ...lanes]);
    for (const replica of replicas) replica.close();
    await token.close();
    log(
      `${records.length} devices, answers ${JSON.stringify(Object.fromEntries(answers))}, ${errorsRetried} errors retried`,
    );
    // Latency as devices saw it: in calm, and of the requests in flight during each fault.
    const p50 = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    const overlapping = (f: { from: number; to: number }) =>
      spans.filter((x) => x.start < f.to && x.end > f.from);
    const calm = spans.filter((x) => faults.every((f) => !overlapping(f).includes(x)));
    log(`calm: ${calm.length} requests, p50 ${p50(calm.map((x) => x.end - x.start))} ms`);
    for (const f of faults) {
      const hit = overlapping(f).map((x) => x.end - x.start);
      log(
        `${f.what} (${f.to - f.from} ms): ${hit.length} requests in flight, p50 ${p50(hit)} ms, max ${Math.max(0, ...hit)} ms`,
      );
    }

    // Every device got its certificate; the database holds exactly one per transaction, the one it got.
    expect(records.filter((r) => r.status !== 'SUCCESS')).toEqual([]);
    const database = await openDatabase({
      url: productDatabaseUrl(settings),
      pgliteDir: join(work, 'unused'),
    });
    try {
      const problems = await checkCertificateRecords({
        db: database.db,
        profile,
        deviceIdPrefix: prefix,
        records,
      });
      expect(problems).toEqual([]);
    } finally {
      await database.close();
    }
    expect(await runningEnrollments({ client, profile, records, waitMs: 60_000 })).toEqual([]);
    // The HSM host was down for less than the retry budget: nobody was asked to step in.
    const escalated = await client.workflow.count(`WorkflowType = 'enrollment' AND PkiStatus = 'Escalated'`);
    expect(Number(escalated.count)).toBe(0);
  });

  it('/readyz names what a replica lacks; SIGTERM makes it unready at once and still answers the device in flight', async () => {
    const [port1, port2] = settings.ports.api as [number, number];
    const readyz = async (port: number) => {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      return { status: res.status, body: (await res.json()) as ReadinessReport };
    };
    const ready = await readyz(port1);
    expect(ready.status).toBe(200);
    expect(Object.keys(ready.body.checks).sort()).toEqual(['database', 'hsm:data', 'hsm:ra', 'temporal']);
    // Workers answer on their own port; each names the tokens of its job and no other.
    const hsmWorker = await readyz(settings.ports.workerHealth);
    expect(hsmWorker.status).toBe(200);
    expect(Object.keys(hsmWorker.body.checks).sort()).toEqual([
      'database',
      'hsm:ca',
      'hsm:data',
      'temporal',
      'workers',
    ]);
    const pkiWorker = await readyz(settings.ports.workerHealth + settings.pkiHsmWorkers);
    expect(Object.keys(pkiWorker.body.checks).sort()).toEqual([
      'database',
      'hsm:data',
      'temporal',
      'workers',
    ]);

    // Temporal down: every replica says so (and stays live), and is ready again once it is back.
    const downAt = Date.now();
    await killClusterProcess(settings, 'temporal');
    const down = await readyz(port1);
    expect(down.status).toBe(503);
    expect(down.body.checks.temporal?.ok).toBe(false);
    expect(down.body.checks.database?.ok).toBe(true);
    expect((await fetch(`http://127.0.0.1:${port1}/healthz`)).status).toBe(200);
    // Down for a minute, probed as a load balancer would: by then grpc-js's default backoff waits
    // about half a minute between reconnects, and a replica stayed unready that long after Temporal
    // was back. With the backoff capped (runtime/services.ts) both are ready within seconds.
    while (Date.now() - downAt < 60_000) {
      expect((await readyz(port1)).status).toBe(503);
      await new Promise((r) => setTimeout(r, 5_000));
    }
    await restartClusterProcess(settings, 'temporal', log);
    const back = Date.now();
    for (const port of [port1, port2])
      await until(
        `API on ${port} ready within 12 s of Temporal's return`,
        async () => ((await readyz(port)).status === 200 ? true : undefined),
        12_000,
      );
    log(`both API replicas ready ${((Date.now() - back) / 1000).toFixed(1)} s after Temporal was back`);

    // A deploy: SIGTERM to api-2 while a device is enrolling through it.
    const enrolling = scepclientEnroll({
      url: `http://127.0.0.1:${port2}/scep/${profile}`,
      challenge,
      cn: 'cluster-during-sigterm',
      timeoutMs: 90_000,
    });
    await new Promise((r) => setTimeout(r, 300));
    await killClusterProcess(settings, 'api-2', 'SIGTERM');
    const draining = await readyz(port2);
    expect(draining.status).toBe(503);
    expect(draining.body.draining).toBe(true);
    const result = await enrolling;
    expect(result.code, result.output).toBe(0);
    expect(result.certificatePem).toContain('BEGIN CERTIFICATE');
    // It then closes its listeners and connections and exits by itself, as an orchestrator expects.
    const answeredAt = Date.now();
    const api2 = async () => (await clusterStatus(settings)).processes.find((p) => p.name === 'api-2');
    const stopped = await until(
      'api-2 to exit within 30 s of the answer',
      async () => {
        const status = await api2();
        return status && !status.alive ? status : undefined;
      },
      30_000,
    ).catch(async (err: Error) => {
      const status = await api2();
      throw new Error(
        `${err.message}; its log:\n${status ? logTail(status.log, 40) : '(not in the status)'}`,
      );
    });
    log(`api-2 exited ${((Date.now() - answeredAt) / 1000).toFixed(1)} s after the answer`);
    // Every stage closed: it was not the shutdown bound (runtime/shutdown.ts) that ended it.
    expect(logTail(stopped.log, 40)).toContain('"msg":"closed"');
    await restartClusterProcess(settings, 'api-2', log);
    expect((await readyz(port2)).status).toBe(200);
  });

  it('a lifecycle timer fires after the whole cluster was stopped and started again', async () => {
    const result = await scepclientEnroll({
      url: `http://127.0.0.1:${settings.ports.api[0]}/scep/short`,
      challenge: 'short-challenge',
      cn: 'cluster-short-lived',
      timeoutMs: 90_000,
    });
    expect(result.code, result.output).toBe(0);
    const issuedAt = Date.now();
    const lifecycle = client.workflow.getHandle(deviceWorkflowId('short', 'cluster-short-lived'));
    const status = async () => {
      try {
        const attributes = (await lifecycle.describe()).typedSearchAttributes;
        return attributes.get(PkiStatusKey);
      } catch {
        return undefined; // the frontend is restarting
      }
    };
    const until = async (want: string, ms: number) => {
      const deadline = Date.now() + ms;
      for (let s = await status(); s !== want; s = await status()) {
        if (Date.now() > deadline) return s;
        await new Promise((r) => setTimeout(r, 1000));
      }
      return want;
    };
    expect(await until('Active', 30_000)).toBe('Active');

    // Everything stops (Temporal last) before the renewal point, one minute after issuance.
    await clusterDown(settings, log);
    expect(Date.now() - issuedAt).toBeLessThan(50_000);
    await clusterUp(settings, log);
    expect(await until('RenewalDue', 120_000)).toBe('RenewalDue');
    log(`RenewalDue ${((Date.now() - issuedAt) / 1000).toFixed(0)} s after issuance (due at 60 s)`);
  });

  it('`down` stops every process with SIGTERM, APIs first, Temporal last; a second `down` is a no-op', async () => {
    const outcomes = await clusterDown(settings, log);
    const names = outcomes.map((o) => o.name);
    expect(names.indexOf('api-1')).toBeLessThan(names.indexOf('worker-pki-1'));
    expect(names.indexOf('worker-pki-hsm-1')).toBeLessThan(names.indexOf('temporal'));
    expect(names.at(-1)).toBe('temporal');
    for (const o of outcomes) expect(o.outcome, o.name).toBe('stopped');
    expect(await clusterDown(settings, log)).toEqual([]);
    const status = await clusterStatus(settings);
    expect(status.processes.every((p) => !p.alive)).toBe(true);
  });
});
