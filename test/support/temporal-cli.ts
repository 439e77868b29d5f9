import { findTemporalCli } from '../../scripts/temporal-cli.js';
import type { Pipeline } from './pipeline.js';
import { exec } from './scep-clients.js';

/** The `temporal` command line, exactly as an operator types it, against the pipeline's namespace. */
export async function temporalCli(
  pipeline: Pipeline,
  args: string[],
  env?: NodeJS.ProcessEnv,
): Promise<{ code: number; output: string }> {
  const cli = await findTemporalCli();
  if (!cli) throw new Error('temporal CLI not found (run npx tsx scripts/temporal-cli.ts)');
  return exec(
    cli,
    [...args, '--address', pipeline.temporalAddress, '--namespace', pipeline.client.options.namespace],
    env ? { env: { ...process.env, ...env } } : {},
  );
}
