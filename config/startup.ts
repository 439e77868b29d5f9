/**
 * What every process reads first: its settings, the PKI file, and (PKI_ENV=production) the refusal
 * to run with development settings. A configuration problem ends the process with its message and
 * exit code 2, before anything is opened; no stack trace for an operator to decode.
 */
import { ConfigError, loadPkiConfig } from './load.js';
import { assertProductionReady, type ProductionContext } from './production.js';
import type { PkiConfig } from './profile-types.js';
import { type RuntimeSettings, runtimeSettings } from './runtime.js';

export function startupConfig(
  processName: string,
  context: Omit<ProductionContext, 'pins'> & { pinVariables: string[] },
  env: NodeJS.ProcessEnv = process.env,
): { settings: RuntimeSettings; config: PkiConfig } {
  try {
    const settings = runtimeSettings(env);
    const config = loadPkiConfig(env);
    assertProductionReady(
      config,
      {
        ...context,
        pins: context.pinVariables.map((variable) => ({ variable, value: env[variable] })),
        tokenLabels: Object.fromEntries(
          Object.entries(settings.hsm.tokens).map(([role, token]) => [role, token?.label]),
        ),
      },
      env,
    );
    return { settings, config };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`[${processName}] ${err.message}`);
    process.exit(2);
  }
}
