/**
 * The floor of issue 10 as load: its worker in a child process (so its CPU is measured apart), and one
 * request = one floorEnrollment workflow started by update-with-start, answered by its update.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { type Client, WithStartWorkflowOperation } from '@temporalio/client';
import { PROJECT_ROOT } from '../../config/load.js';
import { runningWorkflows } from '../accounting.js';
import type { Outcome } from '../load-generator.js';
import { FLOOR_TASK_QUEUE, FLOOR_WORKFLOW_TYPE, floorOutcomeUpdate } from './definitions.js';
import type { floorEnrollment } from './workflow.js';

export { FLOOR_TASK_QUEUE } from './definitions.js';

export interface FloorWorker {
  pid: number;
  output(): string;
  /** SIGTERM, then SIGKILL after 15 s. Idempotent. */
  stop(): Promise<void>;
}

export async function startFloorWorker(opts: {
  address: string;
  namespace: string;
  taskQueue?: string;
  startTimeoutMs?: number;
}): Promise<FloorWorker> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'bench/floor/worker.ts',
      '--address',
      opts.address,
      '--namespace',
      opts.namespace,
      '--task-queue',
      opts.taskQueue ?? FLOOR_TASK_QUEUE,
    ],
    { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + (opts.startTimeoutMs ?? 120_000);
  while (!output.includes('[floor-worker] polling')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`floor worker did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { pid: child.pid!, output: () => output, stop };
}

/** For runLevel: one floor workflow per request, ok when its update returns what the steps made. */
export class FloorLoad {
  private sequence = 0;
  readonly workflowIds: string[] = [];

  /** @param idPrefix workflow ids start with it: make it unique per run */
  constructor(private readonly opts: { client: Client; idPrefix: string; taskQueue?: string }) {}

  readonly operation = async (): Promise<Outcome> => {
    const workflowId = `${this.opts.idPrefix}${this.sequence++}`;
    this.workflowIds.push(workflowId);
    try {
      const outcome = await this.opts.client.workflow.executeUpdateWithStart(floorOutcomeUpdate, {
        args: [workflowId],
        startWorkflowOperation: new WithStartWorkflowOperation<typeof floorEnrollment>(FLOOR_WORKFLOW_TYPE, {
          workflowId,
          taskQueue: this.opts.taskQueue ?? FLOOR_TASK_QUEUE,
          args: [workflowId],
          workflowIdConflictPolicy: 'USE_EXISTING',
        }),
      });
      const expected = `${workflowId}:verified:issued:recorded`;
      return outcome === expected
        ? { kind: 'ok' }
        : { kind: 'failed', reason: `unexpected outcome ${outcome}` };
    } catch (err) {
      return { kind: 'failed', reason: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
    }
  };

  /** Floor workflows of this load still running after their update answered (should be none). */
  stillRunning(waitMs?: number): Promise<string[]> {
    return runningWorkflows({
      client: this.opts.client,
      workflowType: FLOOR_WORKFLOW_TYPE,
      workflowIds: this.workflowIds,
      ...(waitMs !== undefined ? { waitMs } : {}),
    });
  }
}
