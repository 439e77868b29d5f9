import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HISTORY_FIXTURES, replayRecorded, WORKFLOWS_PATH } from '../support/history-fixtures.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { scepclientEnroll } from '../support/scep-clients.js';
import { waitForWorkflows } from '../support/temporal.js';

/**
 * Non-determinism is what breaks long-lived workflows after a deploy. Histories recorded from real
 * runs are committed under test/fixtures/histories/ and replayed against today's workflow code:
 * a change that would break a running enrollment or device lifecycle fails here first.
 * `UPDATE_HISTORY_FIXTURES=1 npm test -- test/e2e/workflow-replay.test.ts` records new ones (keep the
 * old files: running workflows still have those histories).
 */
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
    const recorded = [
      {
        name: 'enrollment',
        execution: enrollment!,
        history: await pipeline.client.workflow.getHandle(enrollment!.workflowId).fetchHistory(),
      },
      {
        name: 'device-lifecycle',
        execution: lifecycle!,
        history: await pipeline.client.workflow
          .getHandle(lifecycle!.workflowId, lifecycle!.runId)
          .fetchHistory(),
      },
    ];
    for (const { name, execution, history } of recorded)
      await replayRecorded(pipeline, execution, history, name);
  }, 120_000);

  it('replays every committed history', async () => {
    const files = existsSync(HISTORY_FIXTURES)
      ? readdirSync(HISTORY_FIXTURES).filter((f) => f.endsWith('.json'))
      : [];
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      // The JSON `temporal workflow show --output json` writes, as the SDK accepts it.
      const history: unknown = JSON.parse(readFileSync(join(HISTORY_FIXTURES, file), 'utf8'));
      await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, history, file);
    }
  }, 120_000);
});
