import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ClientRun {
  code: number;
  output: string;
  dir: string;
  /** PEM of the issued certificate, when the client wrote one. */
  certificatePem: string | undefined;
}

/**
 * micromdm scepclient (Debian `scep`), exactly as a user would run it. Each run gets its own
 * directory: the client writes csr.pem/self.pem next to its key.
 */
export async function scepclientEnroll(opts: {
  url: string;
  challenge?: string;
  cn: string;
  dir?: string;
  timeoutMs?: number;
}): Promise<ClientRun> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'scepclient-'));
  const key = join(dir, 'key.pem');
  const certificate = join(dir, 'cert.pem');
  if (!existsSync(key)) await run('openssl', ['genrsa', '-traditional', '-out', key, '2048']);
  const args = ['-server-url', opts.url, '-private-key', key, '-certificate', certificate, '-cn', opts.cn];
  if (opts.challenge !== undefined) args.push('-challenge', opts.challenge);
  const result = await exec('scepclient', args, { cwd: dir, timeout: opts.timeoutMs ?? 60_000 });
  return {
    ...result,
    dir,
    certificatePem: existsSync(certificate) ? readFileSync(certificate, 'utf8') : undefined,
  };
}

export async function exec(
  file: string,
  args: string[],
  opts: { cwd?: string; timeout?: number; input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(file, args, { ...opts, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message: string };
    return {
      code: typeof e.code === 'number' ? e.code : -1,
      output: `${e.stdout ?? ''}${e.stderr ?? ''}${e.message}`,
    };
  }
}
