import { type ChildProcess, spawn } from 'node:child_process';
import { PROJECT_ROOT } from '../config/load.js';

export interface ProductProcess {
  process: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  /** The match of the ready pattern (what it printed when it became ready: its URLs...). */
  ready: RegExpExecArray;
  /** Resolves when it exits, with its exit code or the signal that ended it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * An entry point of the product (`api/main.ts`, `worker/main.ts`...) as its own OS process, run the
 * way production runs it (node with tsx), resolved once it prints a line matching `ready`.
 */
export async function startProductProcess(opts: {
  script: string;
  args?: string[];
  env: Record<string, string | undefined>;
  ready: RegExp;
  timeoutMs?: number;
}): Promise<ProductProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', opts.script, ...(opts.args ?? [])], {
    cwd: PROJECT_ROOT,
    // A product process announces readiness (its URLs, "polling") at info: whatever this process
    // logs at, the child logs at info unless told otherwise.
    env: { ...process.env, LOG_LEVEL: 'info', ...opts.env },
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
  const deadline = Date.now() + (opts.timeoutMs ?? 90_000);
  for (;;) {
    const ready = opts.ready.exec(output);
    if (ready) return { process: child, output: () => output, ready, exited };
    if (child.exitCode !== null || Date.now() > deadline) {
      if (child.exitCode === null) child.kill('SIGKILL');
      throw new Error(`${opts.script} did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
