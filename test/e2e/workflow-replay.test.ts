import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PROJECT_ROOT } from '../../config/load.js';
import { payloadCodecOf } from '../../runtime/services.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { scepclientEnroll } from '../support/scep-clients.js';
import { waitForWorkflows } from '../support/temporal.js';
import { temporalCli } from '../support/temporal-cli.js';

/**
 * Non-determinism is what breaks long-lived workflows after a deploy. Histories recorded from real
 * runs are committed under test/fixtures/histories/ and replayed against today's workflow code:
 * a change that would break a running enrollment or device lifecycle fails here first.
 * `UPDATE_HISTORY_FIXTURES=1 npm test -- test/e2e/workflow-replay.test.ts` records new ones (keep the
 * old files: running workflows still have those histories).
 */
const FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'histories');
const workflowsPath = fileURLToPath(new URL('../../workflows/index.ts', import.meta.url));
let pipeline: Pipeline;

beforeAll(async () => {
  process.env.OPERATOR_TOKEN ??= 'replay-fixtures-operator-token';
  pipeline = await startPipeline();
});
afterAll(async () => {
  await pipeline?.stop();
});

describe('workflow histories replay against the current workflow code', () => {
  it('replays an enrollment and a device lifecycle recorded in this run', async () => {
    const enroll = { url: `${pipeline.url}/scep`, challenge: 'test-challenge', cn: 'replay-laptop' };
    const run = await scepclientEnroll(enroll);
    expect(run.code, run.output).toBe(0);
    const [enrollment] = await waitForWorkflows(
      pipeline.client,
      'WorkflowType="enrollment" AND DeviceId="replay-laptop" AND ExecutionStatus="Completed"',
      1,
    );
    await waitForWorkflows(
      pipeline.client,
      'WorkflowType="deviceLifecycle" AND DeviceId="replay-laptop" AND PkiStatus="Active"',
      1,
    );
    // scepclient run again in its directory renews (RenewalReq signed by its certificate): the
    // lifecycle adopts the renewal and continues as new. Its first run is then closed: replaying an
    // open run (timer pending) would wait for events that have not happened yet.
    const renewal = await scepclientEnroll({ ...enroll, dir: run.dir });
    expect(renewal.code, renewal.output).toBe(0);
    const [lifecycle] = await waitForWorkflows(
      pipeline.client,
      'WorkflowType="deviceLifecycle" AND DeviceId="replay-laptop" AND ExecutionStatus="ContinuedAsNew"',
      1,
    );
    const recorded = {
      enrollment: await pipeline.client.workflow.getHandle(enrollment!.workflowId).fetchHistory(),
      'device-lifecycle': await pipeline.client.workflow
        .getHandle(lifecycle!.workflowId, lifecycle!.runId)
        .fetchHistory(),
    };
    // The histories hold ciphertext (runtime/payload-codec.ts): replay decrypts with the data token.
    const dataConverter = { payloadCodecs: [payloadCodecOf(pipeline.tokens.get('data'))] };
    for (const [name, history] of Object.entries(recorded)) {
      await Worker.runReplayHistory({ workflowsPath, dataConverter }, history, `${name}-this-run`);
      if (process.env.UPDATE_HISTORY_FIXTURES) {
        // Exported the way an operator would, with the temporal CLI, decoded by the codec server so
        // the fixture replays without the HSM.
        const { workflowId, runId } = name === 'enrollment' ? enrollment! : lifecycle!;
        const shown = await temporalCli(
          pipeline,
          [
            'workflow',
            'show',
            '--workflow-id',
            workflowId,
            '--run-id',
            runId,
            '--output',
            'json',
            '--codec-endpoint',
            `${pipeline.operatorUrl}/codec`,
            '--codec-auth',
            `Bearer ${process.env.OPERATOR_TOKEN}`,
          ],
          { SSL_CERT_FILE: inject('stack').env.NODE_EXTRA_CA_CERTS },
        );
        expect(shown.code, shown.output).toBe(0);
        mkdirSync(FIXTURES, { recursive: true });
        writeFileSync(join(FIXTURES, `${name}-${new Date().toISOString().slice(0, 10)}.json`), shown.output);
      }
    }
  }, 120_000);

  it('replays every committed history', async () => {
    const files = existsSync(FIXTURES) ? readdirSync(FIXTURES).filter((f) => f.endsWith('.json')) : [];
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      // The JSON `temporal workflow show --output json` writes, as the SDK accepts it.
      const history: unknown = JSON.parse(readFileSync(join(FIXTURES, file), 'utf8'));
      await Worker.runReplayHistory({ workflowsPath }, history, file);
    }
  }, 120_000);
});
