/**
 * SoftHSM2 provisioning for development, tests and the SoftHSM deployments: tokens in a directory,
 * one sub-directory per token named by its label. A real HSM's tokens are its administrators'.
 */
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
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
  const [config] = await ensureSoftHsmTokens({ dir: opts.dir, soPin: opts.soPin, tokens: [opts] });
  return config!;
}

/**
 * Several tokens in one SoftHSM directory, each with its own PIN (key domains). SoftHSM reads its
 * tokens when the module initializes: call this before any HsmToken.open() in the process.
 */
export async function ensureSoftHsmTokens(opts: {
  dir: string;
  soPin: string;
  tokens: Array<{ label: string; pin: string }>;
}): Promise<HsmConfig[]> {
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

  const existing = tokenLabels(confPath);
  for (const token of opts.tokens) {
    if (existing.includes(token.label)) continue;
    const before = new Set(readdirSync(tokenDir));
    softhsmUtil(confPath, [
      '--init-token',
      '--free',
      '--label',
      token.label,
      '--pin',
      token.pin,
      '--so-pin',
      opts.soPin,
    ]);
    placeByLabel(tokenDir, before, token.label);
  }
  return opts.tokens.map((token) => ({ library, tokenLabel: token.label, pin: token.pin }));
}

/** The `directories.tokendir` of a SoftHSM config (the one written above, or a deployment's own). */
export function softHsmTokenDir(confPath: string): string | undefined {
  if (!existsSync(confPath)) return undefined;
  return /^\s*directories\.tokendir\s*=\s*(.+?)\s*$/m.exec(readFileSync(confPath, 'utf8'))?.[1];
}

/**
 * SoftHSM names a new token's directory by a random id; it is moved to `<tokendir>/<label>` so each
 * token has a fixed path a deployment can mount on its own (docker-compose gives each service only
 * the token volumes of its job). SoftHSM finds tokens by scanning the directory, whatever their
 * names; an empty directory (a mount point not yet provisioned) is not a token and is filled here.
 */
function placeByLabel(tokenDir: string, before: Set<string>, label: string): void {
  if (!/^[A-Za-z0-9._-]+$/.test(label)) return; // keep SoftHSM's own name for labels unfit as paths
  const created = readdirSync(tokenDir).filter((name) => !before.has(name));
  if (created.length !== 1) return;
  const from = join(tokenDir, created[0]!);
  const to = join(tokenDir, label);
  if (!existsSync(to)) {
    renameSync(from, to);
    return;
  }
  // A mount point (possibly another filesystem): copy the files in, then drop the original.
  for (const file of readdirSync(from))
    cpSync(join(from, file), join(to, file), { preserveTimestamps: true });
  rmSync(from, { recursive: true, force: true });
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
