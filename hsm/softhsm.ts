/**
 * SoftHSM2 provisioning for development and tests: a token in a project-local directory.
 * Production points HsmConfig at a real HSM and never calls this.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { HsmConfig } from './token.js';

const LIBRARY_CANDIDATES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
];

const INSTALL_COMMAND = 'sudo apt-get install -y softhsm2';

export function findSoftHsmLibrary(): string {
  const fromEnv = process.env.SOFTHSM2_LIB;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`SOFTHSM2_LIB points to ${fromEnv}, which does not exist`);
    return fromEnv;
  }
  const found = LIBRARY_CANDIDATES.find((p) => existsSync(p));
  if (found) return found;
  if (process.getuid?.() === 0 && commandExists('apt-get')) {
    execFileSync('apt-get', ['install', '-y', 'softhsm2'], { stdio: 'inherit' });
    const installed = LIBRARY_CANDIDATES.find((p) => existsSync(p));
    if (installed) return installed;
  }
  throw new Error(INSTALL_COMMAND);
}

export async function ensureSoftHsmToken(opts: {
  dir: string;
  label: string;
  pin: string;
  soPin: string;
}): Promise<HsmConfig> {
  const library = findSoftHsmLibrary();
  const dir = resolve(opts.dir);
  const tokenDir = join(dir, 'tokens');
  mkdirSync(tokenDir, { recursive: true });
  const confPath = join(dir, 'softhsm2.conf');
  writeFileSync(
    confPath,
    `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  // SoftHSM reads SOFTHSM2_CONF in C_Initialize: it must be set before any HsmToken.open().
  process.env.SOFTHSM2_CONF = confPath;

  if (!tokenLabels(confPath).includes(opts.label)) {
    softhsmUtil(confPath, [
      '--init-token',
      '--free',
      '--label',
      opts.label,
      '--pin',
      opts.pin,
      '--so-pin',
      opts.soPin,
    ]);
  }
  return { library, tokenLabel: opts.label, pin: opts.pin };
}

function tokenLabels(confPath: string): string[] {
  const out = softhsmUtil(confPath, ['--show-slots']);
  return [...out.matchAll(/^\s*Label:\s*(.*?)\s*$/gm)].map((m) => m[1] ?? '').filter((l) => l !== '');
}

function softhsmUtil(confPath: string, args: string[]): string {
  try {
    return execFileSync('softhsm2-util', args, {
      encoding: 'utf8',
      env: { ...process.env, SOFTHSM2_CONF: confPath },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    const err = e as { code?: string; stderr?: string; message: string };
    if (err.code === 'ENOENT') throw new Error(`softhsm2-util not found; run: ${INSTALL_COMMAND}`);
    throw new Error(`softhsm2-util ${args[0]} failed: ${err.stderr?.trim() || err.message}`);
  }
}

function commandExists(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
