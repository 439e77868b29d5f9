/**
 * How a process closes what it opened on SIGTERM: in order, one log line per stage, within a bound.
 * A stage that never finishes (a connection that never drains, a library call that never returns)
 * must not keep a replica running after a deploy asked it to stop: past the bound the process exits
 * anyway, with status 1 and a log line naming the stage it was waiting for.
 */
import type { Logger } from './log.js';

export interface ShutdownStage {
  name: string;
  close: () => Promise<unknown>;
}

export interface ShutdownOptions {
  log: Logger;
  /** The longest the stages may take together. */
  boundMs: number;
  /** What happens past the bound (default: exit with status 1). */
  overrun?: (stage: string) => void;
}

/** Resolves once every stage has closed; past the bound, `overrun` is called with the stage still open. */
export async function closeInStages(stages: readonly ShutdownStage[], opts: ShutdownOptions): Promise<void> {
  let current = '';
  const timer = setTimeout(() => {
    opts.log.error(
      { stage: current, boundMs: opts.boundMs },
      `still closing ${current} ${opts.boundMs} ms after the first stage began: exiting anyway`,
    );
    (opts.overrun ?? (() => process.exit(1)))(current);
  }, opts.boundMs);
  try {
    for (const stage of stages) {
      current = stage.name;
      opts.log.info({ stage: stage.name }, `closing ${stage.name}`);
      await stage.close();
    }
  } finally {
    clearTimeout(timer);
  }
  opts.log.info('closed');
}
