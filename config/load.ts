import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KeyAlgorithm } from '../pki/keys.js';
import type { PkiConfig, Profile } from './profile-types.js';

/** The folder holding package.json: the same from sources (config/) and from the build (dist/config/). */
export const PROJECT_ROOT = findProjectRoot(dirname(fileURLToPath(import.meta.url)));

function findProjectRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return resolve(from, '..');
  }
}

/** Thrown at start-up so a bad profiles file stops the process with a message naming the field. */
export class ConfigError extends Error {}

const KEY_ALGORITHMS: readonly KeyAlgorithm[] = ['rsa-2048', 'rsa-3072', 'rsa-4096', 'ec-p256', 'ec-p384'];
const PROFILE_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * Loads the PKI configuration: `PKI_CONFIG` (a path) or config/pki.json, then environment overrides
 * for secrets, so a profiles file can be committed without them:
 * `PKI_PROFILE_<NAME>_CHALLENGE` replaces a static challenge (NAME upper-cased, '-' as '_').
 */
export function loadPkiConfig(env: NodeJS.ProcessEnv = process.env): PkiConfig {
  const file = env.PKI_CONFIG ? resolve(env.PKI_CONFIG) : join(PROJECT_ROOT, 'config', 'pki.json');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read PKI config ${file}: ${(err as Error).message}`);
  }
  const config = validate(raw, file);
  for (const profile of config.profiles) {
    const secret = env[`PKI_PROFILE_${profile.name.toUpperCase().replaceAll('-', '_')}_CHALLENGE`];
    if (secret && profile.mdm.type === 'static-challenge') profile.mdm.challenge = secret;
  }
  return config;
}

export function findProfile(config: PkiConfig, name: string): Profile | undefined {
  return config.profiles.find((p) => p.name === name);
}

function validate(raw: unknown, file: string): PkiConfig {
  const fail = (path: string, why: string): never => {
    throw new ConfigError(`${file}: ${path} ${why}`);
  };
  const obj = (v: unknown, path: string): Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : fail(path, 'must be an object');
  const str = (v: unknown, path: string): string =>
    typeof v === 'string' && v.length > 0 ? v : fail(path, 'must be a non-empty string');
  const num = (v: unknown, path: string, min: number, max: number): number =>
    typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max
      ? v
      : fail(path, `must be a number in [${min}, ${max}]`);
  const keyAlg = (v: unknown, path: string): KeyAlgorithm =>
    KEY_ALGORITHMS.includes(v as KeyAlgorithm)
      ? (v as KeyAlgorithm)
      : fail(path, `must be one of ${KEY_ALGORITHMS.join(', ')}`);
  const rdns = (v: unknown, path: string): Array<[string, string]> => {
    if (!Array.isArray(v) || v.length === 0) fail(path, 'must be a non-empty list of [type, value]');
    return (v as unknown[]).map((pair, i) =>
      Array.isArray(pair) && pair.length === 2 && typeof pair[0] === 'string' && typeof pair[1] === 'string'
        ? ([pair[0], pair[1]] as [string, string])
        : fail(`${path}[${i}]`, 'must be [type, value]'),
    );
  };
  const strings = (v: unknown, path: string): string[] =>
    Array.isArray(v) && v.every((s) => typeof s === 'string')
      ? (v as string[])
      : fail(path, 'must be strings');

  const top = obj(raw, '(root)');
  const root = obj(top.rootCa, 'rootCa');
  const ra = obj(top.ra, 'ra');
  const raAlg = keyAlg(ra.keyAlgorithm, 'ra.keyAlgorithm');
  if (!raAlg.startsWith('rsa-')) fail('ra.keyAlgorithm', 'must be RSA: SCEP key transport is RSA');
  if (!Array.isArray(top.profiles) || top.profiles.length === 0)
    fail('profiles', 'must list at least one profile');
  const seen = new Set<string>();
  const profiles = (top.profiles as unknown[]).map((p, i): Profile => {
    const at = `profiles[${i}]`;
    const o = obj(p, at);
    const name = str(o.name, `${at}.name`);
    if (!PROFILE_NAME.test(name)) fail(`${at}.name`, 'must be lower-case letters, digits and dashes');
    if (seen.has(name)) fail(`${at}.name`, `duplicates profile ${name}`);
    seen.add(name);
    const mdm = obj(o.mdm, `${at}.mdm`);
    if (mdm.type !== 'static-challenge') fail(`${at}.mdm.type`, 'must be static-challenge');
    const ca = obj(o.ca, `${at}.ca`);
    if (ca.type !== 'local-hsm') fail(`${at}.ca.type`, 'must be local-hsm');
    const t = obj(o.template, `${at}.template`);
    return {
      name,
      mdm: { type: 'static-challenge', challenge: str(mdm.challenge, `${at}.mdm.challenge`) },
      ca: {
        type: 'local-hsm',
        keyLabel: str(ca.keyLabel, `${at}.ca.keyLabel`),
        keyAlgorithm: keyAlg(ca.keyAlgorithm, `${at}.ca.keyAlgorithm`),
        subject: rdns(ca.subject, `${at}.ca.subject`),
      },
      template: {
        validitySeconds: num(t.validitySeconds, `${at}.template.validitySeconds`, 60, 3 * 365 * 86400),
        keyUsages: strings(t.keyUsages, `${at}.template.keyUsages`) as Profile['template']['keyUsages'],
        extendedKeyUsages: strings(t.extendedKeyUsages, `${at}.template.extendedKeyUsages`),
        minRsaBits: num(t.minRsaBits, `${at}.template.minRsaBits`, 1024, 16384),
        allowedCurves: strings(t.allowedCurves, `${at}.template.allowedCurves`) as Array<'P-256' | 'P-384'>,
      },
      enrollmentWaitMs: num(o.enrollmentWaitMs, `${at}.enrollmentWaitMs`, 0, 120_000),
      renewalFraction: num(o.renewalFraction, `${at}.renewalFraction`, 0.1, 0.95),
    };
  });
  return {
    rootCa: {
      keyLabel: str(root.keyLabel, 'rootCa.keyLabel'),
      keyAlgorithm: keyAlg(root.keyAlgorithm, 'rootCa.keyAlgorithm'),
      subject: rdns(root.subject, 'rootCa.subject'),
      validityDays: num(root.validityDays, 'rootCa.validityDays', 1, 30 * 365),
    },
    ra: {
      keyLabel: str(ra.keyLabel, 'ra.keyLabel'),
      keyAlgorithm: raAlg as 'rsa-2048' | 'rsa-3072',
      subject: rdns(ra.subject, 'ra.subject'),
    },
    profiles,
  };
}
