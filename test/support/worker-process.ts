import { type ProductProcess, startProductProcess } from '../../scripts/product-process.js';

export type WorkerProcess = ProductProcess;

/**
 * `npm run worker -- --queues ...` as its own OS process, as production runs it: a test can SIGKILL
 * it mid-step, or SIGTERM it and watch it drain.
 */
export function startWorkerProcess(opts: {
  queues: string;
  env: Record<string, string>;
}): Promise<WorkerProcess> {
  return startProductProcess({
    script: 'worker/main.ts',
    args: ['--queues', opts.queues],
    env: opts.env,
    ready: /\[worker\] polling/,
  });
}
