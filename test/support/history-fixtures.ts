import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { expect, inject } from 'vitest';
import { PROJECT_ROOT } from '../../config/load.js';
import { payloadCodecOf } from '../../runtime/services.js';
import type { Pipeline } from './pipeline.js';
import { temporalCli } from './temporal-cli.js';

/** Histories recorded from real runs; test/e2e/workflow-replay.test.ts replays every one of them. */
export const HISTORY_FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'histories');
export const WORKFLOWS_PATH = fileURLToPath(new URL('../../workflows/index.ts', import.meta.url));

/**
 * Replays a history recorded in this run against today's workflow code. With UPDATE_HISTORY_FIXTURES
 * set it is also written as the fixture `<name>-<date>.json`: exported the way an operator would, with
 * the temporal CLI, decoded by the codec server so the fixture replays without the HSM.
 */
export async function replayRecorded(
  pipeline: Pipeline,
  execution: { workflowId: string; runId: string },
  history: temporal.api.history.v1.IHistory,
  name: string,
): Promise<void> {
  // The histories hold ciphertext (runtime/payload-codec.ts): replay decrypts with the data token.
  const dataConverter = { payloadCodecs: [payloadCodecOf(pipeline.tokens.get('data'))] };
  await Worker.runReplayHistory(
    { workflowsPath: WORKFLOWS_PATH, dataConverter },
    history,
    `${name}-this-run`,
  );
  if (!process.env.UPDATE_HISTORY_FIXTURES) return;
  const shown = await temporalCli(
    pipeline,
    [
      'workflow',
      'show',
      '--workflow-id',
      execution.workflowId,
      '--run-id',
      execution.runId,
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
  mkdirSync(HISTORY_FIXTURES, { recursive: true });
  writeFileSync(
    join(HISTORY_FIXTURES, `${name}-${new Date().toISOString().slice(0, 10)}.json`),
    shown.output,
  );
}
