import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadPkiConfig, PROJECT_ROOT } from '../../config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'pki-config-'));
const shipped = JSON.parse(readFileSync(join(PROJECT_ROOT, 'config', 'pki.json'), 'utf8'));

function load(config: unknown, env: Record<string, string> = {}) {
  const file = join(dir, `${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(config));
  return loadPkiConfig({ PKI_CONFIG: file, ...env });
}

describe('the PKI configuration file', () => {
  it('loads the shipped dev configuration and fills operator defaults', () => {
    const config = load(shipped);
    const profile = config.profiles[0]!;
    expect(profile.name).toBe('devices');
    expect(profile.escalation).toEqual({
      maxAttempts: 5,
      initialRetrySeconds: 1,
      maxRetryIntervalSeconds: 60,
      deadlineSeconds: 7 * 86400,
      stepTimeoutSeconds: 30,
    });
    expect(profile.notifications).toEqual({ webhooks: [] });
  });

  it('takes a static challenge from the environment, so secrets stay out of the file', () => {
    const config = load(shipped, { PKI_PROFILE_DEVICES_CHALLENGE: 'from-env' });
    expect(config.profiles[0]!.mdm).toEqual({ type: 'static-challenge', challenge: 'from-env' });
  });

  it('names every wrong field in one error', () => {
    const broken = structuredClone(shipped);
    broken.ra.keyAlgorithm = 'ec-p256';
    broken.profiles[0].name = 'Not A Name';
    broken.profiles[0].mdm = { type: 'intune', tenantId: 't', clientId: 'c', clientSecretEnv: 'lower-case' };
    broken.profiles.push(structuredClone(shipped.profiles[0]));
    let error: unknown;
    try {
      load(broken);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/ra\.keyAlgorithm/);
    expect(message).toMatch(/profiles\.0\.name: must be lower-case letters, digits and dashes/);
    expect(message).toMatch(/profiles\.0\.mdm\.clientSecretEnv: must be an environment variable name/);
  });

  it('refuses two profiles with the same name', () => {
    expect(() => load({ ...shipped, profiles: [shipped.profiles[0], shipped.profiles[0]] })).toThrow(
      /duplicates devices/,
    );
  });

  it('says which file it could not read', () => {
    expect(() => loadPkiConfig({ PKI_CONFIG: join(dir, 'missing.json') })).toThrow(
      /cannot read PKI config .*missing\.json/,
    );
  });
  it('takes an Intune client certificate instead of a secret, never both, issued by a local CA', () => {
    const intune = (mdm: Record<string, unknown>) => {
      const config = structuredClone(shipped);
      config.profiles[0].template.requesterChosenCommonName = false;
      config.profiles[0].mdm = { type: 'intune', tenantId: 't', clientId: 'c', ...mdm };
      return config;
    };
    const loaded = load(intune({ clientCertificate: { name: 'entra-app' } })).profiles[0]!.mdm;
    expect(loaded).toMatchObject({
      clientCertificate: { name: 'entra-app', validitySeconds: 365 * 86400, renewBeforeSeconds: 30 * 86400 },
    });
    expect(() => load(intune({}))).toThrow(/exactly one of clientSecretEnv and clientCertificate/);
    expect(() =>
      load(intune({ clientSecretEnv: 'INTUNE_SECRET', clientCertificate: { name: 'entra-app' } })),
    ).toThrow(/exactly one of clientSecretEnv and clientCertificate/);
    expect(() => load(intune({ clientCertificate: { name: 'entra-app', profile: 'nowhere' } }))).toThrow(
      /local-hsm CA \(nowhere is not one\)/,
    );
    expect(() =>
      load(
        intune({ clientCertificate: { name: 'entra-app', validitySeconds: 600, renewBeforeSeconds: 600 } }),
      ),
    ).toThrow(/shorter than validitySeconds/);
  });
});
