import { type ChildProcess, spawn } from 'node:child_process';
import { PROJECT_ROOT } from '../../config/load.js';

export interface WorkerProcess {
  process: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  /** Resolves when it exits, with its exit code or the signal that ended it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * `npm run worker -- --queues ...` as its own OS process, as production runs it: a test can SIGKILL
 * it mid-step, or SIGTERM it and watch it drain.
 */
export async function startWorkerProcess(opts: {
  queues: string;
  env: Record<string, string>;
}): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'worker/main.ts', '--queues', opts.queues], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d) => {
    output += d;
  });
  child.stderr?.on('data', (d) => {
    output += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const deadline = Date.now() + 90_000;
  while (!output.includes('[worker] polling')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`worker did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { process: child, output: () => output, exited };
}
