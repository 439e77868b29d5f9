/**
 * The load bench's parts against the real pipeline, at small counts: its SCEP client (PKCSReq,
 * PENDING + CertPoll, FAILURE; also against micromdm scepserver, an independent server), the closed-loop generator's outcome counts, the accounting against
 * the database and Temporal, and the floor workflow in its own worker process. Speed is not checked:
 * results are measured by `npm run bench:load`, never asserted by a test.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { checkCertificateRecords, runningEnrollments } from '../../bench/accounting.js';
import { EnrollmentLoad } from '../../bench/enrollment-load.js';
import { FloorLoad, type FloorWorker, startFloorWorker } from '../../bench/floor/index.js';
import { runLevel } from '../../bench/load-generator.js';
import { type DeviceKey, generateDeviceKeys, ScepClient } from '../../bench/scep-client/index.js';
import { startScepServer } from '../../bench/stack.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';

let pipeline: Pipeline;
let client: ScepClient;
let keys: DeviceKey[];
let floorWorker: FloorWorker;
const PROFILE = 'devices';
const CHALLENGE = 'test-challenge';

beforeAll(async () => {
  // No HSM host yet and a 1 s wait: the first enrollment is answered PENDING and must be polled.
  // The floor worker bundles its workflow meanwhile, in the dev server's 'default' namespace.
  [pipeline, floorWorker] = await Promise.all([
    startPipeline({ queues: ['pki'], enrollmentWaitMs: 1000 }),
    startFloorWorker({ address: inject('stack').temporalAddress, namespace: 'default' }),
  ]);
  // The devices' keys live in a token of the run (SoftHSM reads one configuration per process).
  keys = await generateDeviceKeys(3, pipeline.tokens.get('data'));
  client = await ScepClient.connect({
    url: `${pipeline.url}/scep`,
    pollIntervalMs: 250,
    pollTimeoutMs: 30_000,
  });
});
afterAll(async () => {
  client?.close();
  await floorWorker?.stop();
  await pipeline?.stop();
});

describe('the bench SCEP client', () => {
  it('polls a PENDING transaction with CertPoll until its certificate arrives', async () => {
    const enrolling = client.enroll({
      key: keys[0]!,
      commonName: 'bench-smoke-pending',
      challengePassword: CHALLENGE,
    });
    await new Promise((r) => setTimeout(r, 1500));
    await pipeline.startQueue('pki-hsm');
    const result = await enrolling;
    expect(result.status).toBe('SUCCESS');
    expect(result.polls).toBeGreaterThan(0);
  });

  it('enrolls with micromdm scepserver too, and reads its FAILURE', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-smoke-scepserver-'));
    const server = await startScepServer({ dir, challenge: 'micromdm-challenge' });
    const micromdm = await ScepClient.connect({ url: server.url });
    try {
      const ok = await micromdm.enroll({
        key: keys[1]!,
        commonName: 'bench-smoke-m1',
        challengePassword: 'micromdm-challenge',
      });
      expect(ok.status).toBe('SUCCESS');
      const refused = await micromdm.enroll({
        key: keys[1]!,
        commonName: 'bench-smoke-m2',
        challengePassword: 'wrong',
      });
      expect(refused).toMatchObject({ status: 'FAILURE', failInfo: 'badRequest' });
    } finally {
      micromdm.close();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a small load run', () => {
  it('accounts for every request: outcomes add up, every SUCCESS is on record once with its serial', async () => {
    const deviceIdPrefix = `bench-smoke-${Date.now()}-`;
    const load = new EnrollmentLoad({ client, keys, challengePassword: CHALLENGE, deviceIdPrefix });
    const run = await runLevel({ concurrency: 3, count: 6, operation: load.operation });
    const refused = new EnrollmentLoad({
      client,
      keys,
      challengePassword: 'not-the-challenge',
      deviceIdPrefix,
    });
    const refusedRun = await runLevel({ concurrency: 1, count: 1, operation: refused.operation });

    expect(run.requests).toBe(6);
    expect(run.ok + run.failed + run.pending).toBe(run.requests);
    expect(run.ok, JSON.stringify(run.reasons)).toBe(6);
    expect(new Set(load.records.map((r) => r.deviceId)).size).toBe(6);
    expect(refusedRun).toMatchObject({ requests: 1, ok: 0, failed: 1, pending: 0 });
    expect(Object.keys(refusedRun.reasons)).toEqual([expect.stringMatching(/^FAILURE/)]);

    const records = [...load.records, ...refused.records];
    const check = (r: typeof records) =>
      checkCertificateRecords({ db: pipeline.db.db, profile: PROFILE, deviceIdPrefix, records: r });
    expect(await check(records)).toEqual([]);
    expect(await runningEnrollments({ client: pipeline.client, profile: PROFILE, records })).toEqual([]);

    // The accounting notices a wrong serial, and a certificate no device was told about.
    const [first, ...rest] = records;
    expect(await check([{ ...first!, serialHex: 'ff' }, ...rest])).toEqual([
      expect.stringMatching(/on record serial .* the device got ff/),
    ]);
    expect(await check(rest)).toEqual([
      expect.stringMatching(/certificates on record for/),
      expect.stringMatching(/on record but no device received it/),
    ]);
  });

  it('runs the floor workflow through a worker in its own process', async () => {
    const temporal = new Client({ connection: pipeline.client.connection, namespace: 'default' });
    const load = new FloorLoad({ client: temporal, idPrefix: `bench-smoke-floor/${Date.now()}/` });
    const run = await runLevel({ concurrency: 2, count: 4, operation: load.operation });
    expect(run, JSON.stringify(run.reasons)).toMatchObject({ requests: 4, ok: 4, failed: 0, pending: 0 });
    expect(await load.stillRunning()).toEqual([]);
  });
});
