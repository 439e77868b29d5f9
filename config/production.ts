/**
 * Secure by default: with PKI_ENV=production a process refuses to start while any development
 * convenience is left on. Each problem names the setting to change; all of them are reported at once.
 */
import { ConfigError } from './load.js';
import type { PkiConfig } from './profile-types.js';

/** PINs the development stack creates its SoftHSM tokens with (config/runtime.ts). */
export const DEVELOPMENT_PINS: ReadonlySet<string> = new Set(['1234', '5678']);
const MIN_OPERATOR_TOKEN_LENGTH = 32;

export function isProduction(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.PKI_ENV === 'production';
}

export interface ProductionContext {
  /** The HSM PINs this process logs in with, by the variable that sets each. */
  pins: Array<{ variable: string; value: string | undefined }>;
  /** Whether this process serves the operator API (only then does OPERATOR_TOKEN matter). */
  servesOperators: boolean;
  /** The token label of each key domain (config/runtime.ts); two domains on one token defeat custody. */
  tokenLabels?: Partial<Record<'ra' | 'ca' | 'data' | 'root', string>>;
}

/** Every development setting still on, as a sentence naming the setting. Empty: fit for production. */
export function productionProblems(
  config: PkiConfig,
  context: ProductionContext,
  env: NodeJS.ProcessEnv = process.env,
): string[] {
  const problems: string[] = [];
  for (const { variable, value } of context.pins) {
    if (!value) problems.push(`${variable} is not set: give the HSM token its own PIN`);
    else if (DEVELOPMENT_PINS.has(value))
      problems.push(`${variable} is a development default PIN: set the token's real PIN`);
  }
  const labels = context.tokenLabels ?? {};
  for (const [a, b] of [
    ['ra', 'ca'],
    ['data', 'ca'],
    ['ra', 'data'],
  ] as const)
    if (labels[a] && labels[a] === labels[b])
      problems.push(
        `HSM_${a.toUpperCase()}_TOKEN_LABEL and HSM_${b.toUpperCase()}_TOKEN_LABEL both name "${labels[a]}": ` +
          'each key domain needs its own token, or a process of one domain can use the keys of the other',
      );
  if (context.servesOperators && env.OPERATOR_AUTH !== 'client-certificate') {
    const token = env.OPERATOR_TOKEN ?? '';
    if (token.length < MIN_OPERATOR_TOKEN_LENGTH)
      problems.push(
        `OPERATOR_TOKEN is ${token ? `only ${token.length} characters` : 'not set'}: use at least ` +
          `${MIN_OPERATOR_TOKEN_LENGTH} random characters, or OPERATOR_AUTH=client-certificate`,
      );
  }
  for (const profile of config.profiles) {
    const at = `profile ${profile.name}`;
    if (profile.mdm.type === 'static-challenge' && !profile.allowStaticChallenge)
      problems.push(
        `${at}: mdm.type static-challenge vouches for no device (anyone holding the challenge enrolls); ` +
          'use an MDM verifier, or set allowStaticChallenge: true to accept it knowingly',
      );
    if (profile.template.minRsaBits < 2048)
      problems.push(`${at}: template.minRsaBits is ${profile.template.minRsaBits}; production needs >= 2048`);
    for (const [setting, url] of endpoints(profile))
      if (url.startsWith('http:'))
        problems.push(`${at}: ${setting} is ${url}; production talks to it over https: only`);
  }
  return problems;
}

/** Throws a ConfigError listing every problem when PKI_ENV=production; does nothing otherwise. */
export function assertProductionReady(
  config: PkiConfig,
  context: ProductionContext,
  env: NodeJS.ProcessEnv = process.env,
): void {
  if (!isProduction(env)) return;
  const problems = productionProblems(config, context, env);
  if (problems.length > 0)
    throw new ConfigError(
      `PKI_ENV=production refuses to start:\n  ${problems.join('\n  ')}\n` +
        '(unset PKI_ENV for a development run)',
    );
}

/** The URLs a profile calls out to: MDM, upstream CA and event webhooks, by the setting that holds each. */
function endpoints(profile: PkiConfig['profiles'][number]): Array<[string, string]> {
  const found: Array<[string, string]> = [];
  const mdm = profile.mdm;
  if (mdm.type === 'intune') found.push(['mdm.authority', mdm.authority], ['mdm.graphUrl', mdm.graphUrl]);
  if (mdm.type === 'jamf') found.push(['mdm.baseUrl', mdm.baseUrl]);
  if (mdm.type === 'challenge-webhook') found.push(['mdm.url', mdm.url]);
  if (profile.ca.type === 'globalsign-atlas') found.push(['ca.baseUrl', profile.ca.baseUrl]);
  profile.notifications.webhooks.forEach((hook, i) => {
    found.push([`notifications.webhooks.${i}.url`, hook.url]);
  });
  return found;
}
