import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type PkiConfig, type Profile, pkiConfigSchema } from './profile-types.js';

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

/**
 * Loads the PKI configuration: `PKI_CONFIG` (a path) or config/pki.json, checked against the schema,
 * then `PKI_PROFILE_<NAME>_CHALLENGE` (NAME upper-cased, '-' as '_') replaces a static challenge.
 */
export function loadPkiConfig(env: NodeJS.ProcessEnv = process.env): PkiConfig {
  const file = env.PKI_CONFIG ? resolve(env.PKI_CONFIG) : join(PROJECT_ROOT, 'config', 'pki.json');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read PKI config ${file}: ${(err as Error).message}`);
  }
  const parsed = pkiConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`${file}:\n  ${problems.join('\n  ')}`);
  }
  const config = parsed.data;
  for (const profile of config.profiles) {
    const secret = env[`PKI_PROFILE_${profile.name.toUpperCase().replaceAll('-', '_')}_CHALLENGE`];
    if (secret && profile.mdm.type === 'static-challenge') profile.mdm.challenge = secret;
  }
  return config;
}

export function findProfile(config: PkiConfig, name: string): Profile | undefined {
  return config.profiles.find((p) => p.name === name);
}

/** A secret named in the config: read from the environment, clearly refused when absent. */
export function secretFromEnv(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[name];
  if (!value) throw new ConfigError(`environment variable ${name} (named in the PKI config) is not set`);
  return value;
}
