import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../config/load.js';

/**
 * Secure by default: `PKI_ENV=production` refuses to start with a development setting, naming it.
 * Each case starts the real entry point (`tsx api/main.ts`) with one thing wrong in an otherwise
 * production-ready setup, and expects exit code 2 and the setting in its message, before anything
 * (HSM, database, Temporal) is opened.
 */
const work = mkdtempSync(join(tmpdir(), 'prod-start-'));
const example = JSON.parse(readFileSync(join(PROJECT_ROOT, 'config', 'pki.production.example.json'), 'utf8'));
const goodEnv = {
  PKI_ENV: 'production',
  HSM_RA_PIN: 'a-real-ra-pin-4242',
  HSM_DATA_PIN: 'a-real-data-pin-4242',
  HSM_RA_TOKEN_LABEL: 'acme-ra',
  HSM_CA_TOKEN_LABEL: 'acme-ca',
  HSM_DATA_TOKEN_LABEL: 'acme-data',
  OPERATOR_TOKEN: 'x'.repeat(48),
  // Past the checks, the process opens the HSM: none here, so a control run stops there instead.
  PKCS11_LIBRARY: join(work, 'no-such-pkcs11.so'),
};

function start(config: unknown, env: Record<string, string | undefined> = {}) {
  const file = join(work, `${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(config));
  const merged = { PATH: process.env.PATH, HOME: process.env.HOME, PKI_CONFIG: file, ...goodEnv, ...env };
  const clean = Object.fromEntries(
    Object.entries(merged).filter(([, v]) => v !== undefined),
  ) as NodeJS.ProcessEnv;
  return new Promise<{ code: number | null; output: string }>((resolve) => {
    execFile(
      join(PROJECT_ROOT, 'node_modules', '.bin', 'tsx'),
      [join(PROJECT_ROOT, 'api', 'main.ts')],
      { env: clean, timeout: 30_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, output: stdout + stderr }),
    );
  });
}

// biome-ignore lint/suspicious/noExplicitAny: a JSON document edited freely, as an operator would
const withProfile = (change: (profile: Record<string, any>) => void) => {
  const config = structuredClone(example);
  change(config.profiles[0]);
  return config;
};

describe.concurrent('PKI_ENV=production start-up', () => {
  it('passes the checks with the shipped example production config (and then needs a real HSM)', async () => {
    const run = await start(example);
    expect(run.output).not.toContain('refuses to start');
    expect(run.output).toMatch(/no-such-pkcs11\.so/);
  });

  it.each([
    [
      'a static-challenge profile without allowStaticChallenge',
      withProfile((p) => {
        p.mdm = { type: 'static-challenge', challenge: 'shared' };
        p.template.requesterChosenCommonName = true;
      }),
      {},
      /profile windows: mdm\.type static-challenge vouches for no device.*allowStaticChallenge: true/,
    ],
    [
      'the development RA token PIN',
      example,
      { HSM_RA_PIN: '1234' },
      /HSM_RA_PIN is a development default PIN/,
    ],
    ['no data token PIN at all', example, { HSM_DATA_PIN: undefined }, /HSM_DATA_PIN is not set/],
    [
      'the RA and CA domains on one token',
      example,
      { HSM_CA_TOKEN_LABEL: 'acme-ra' },
      /HSM_RA_TOKEN_LABEL and HSM_CA_TOKEN_LABEL both name "acme-ra": each key domain needs its own token/,
    ],
    [
      'no OPERATOR_TOKEN',
      example,
      { OPERATOR_TOKEN: undefined },
      /OPERATOR_TOKEN is not set: use at least 32/,
    ],
    [
      'a short OPERATOR_TOKEN',
      example,
      { OPERATOR_TOKEN: 'short-token' },
      /OPERATOR_TOKEN is only 11 characters/,
    ],
    [
      'minRsaBits below 2048',
      withProfile((p) => {
        p.template.minRsaBits = 1024;
      }),
      {},
      /profile windows: template\.minRsaBits is 1024; production needs >= 2048/,
    ],
    [
      'an http: MDM endpoint',
      withProfile((p) => {
        p.mdm.graphUrl = 'http://graph.example.com';
      }),
      {},
      /profile windows: mdm\.graphUrl is http:\/\/graph\.example\.com; production talks to it over https: only/,
    ],
    [
      'an http: event webhook',
      withProfile((p) => {
        p.notifications.webhooks[0].url = 'http://siem.example.com/hook';
      }),
      {},
      /profile windows: notifications\.webhooks\.0\.url is http:/,
    ],
    [
      'an http: upstream CA',
      withProfile((p) => {
        p.ca = {
          type: 'globalsign-atlas',
          baseUrl: 'http://emea.api.hvca.globalsign.com:8443/v2',
          apiKeyEnv: 'ATLAS_KEY',
          apiSecretEnv: 'ATLAS_SECRET',
          clientCertFile: '/etc/atlas.pem',
          clientKeyFile: '/etc/atlas.key',
        };
      }),
      {},
      /profile windows: ca\.baseUrl is http:/,
    ],
  ])('refuses %s, naming the setting', async (_what, config, env, message) => {
    const run = await start(config, env);
    expect(run.code, run.output).toBe(2);
    expect(run.output).toContain('PKI_ENV=production refuses to start');
    expect(run.output).toMatch(message);
  });

  it('accepts the static challenge when the profile says so knowingly', async () => {
    const run = await start(
      withProfile((p) => {
        p.mdm = { type: 'static-challenge', challenge: 'shared' };
        p.template.requesterChosenCommonName = true;
        p.allowStaticChallenge = true;
      }),
    );
    expect(run.output).not.toContain('refuses to start');
  });

  it('lets operators authenticate by client certificate instead of the token', async () => {
    const run = await start(example, { OPERATOR_TOKEN: undefined, OPERATOR_AUTH: 'client-certificate' });
    expect(run.output).not.toContain('refuses to start');
  });
});
