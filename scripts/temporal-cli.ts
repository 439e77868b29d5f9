/**
 * Finds (or builds) the Temporal CLI, which carries the Temporal dev server (`temporal server start-dev`).
 *
 * Lookup order (the first candidate that answers `--version` wins):
 *   1. `temporal` on PATH
 *   2. `$TEMPORAL_CLI` (absolute path to a binary)
 *   3. `<project>/.tools/temporal` (where step 4 puts it; git-ignored)
 *   4. build it: `GOBIN=<project>/.tools go install github.com/temporalio/cli/cmd/temporal@v1.5.1`
 *      when a Go toolchain is found (PATH, then /usr/local/go/bin/go, ...). v1.5.1 is the last tag that
 *      `go install pkg@version` accepts (later tags have `replace` directives). ~3 min on 2 cores, cold.
 *   5. otherwise throw {@link TemporalCliNotFoundError}, which says exactly what to do.
 *
 * There is one more fallback, for machines with internet access but neither a CLI nor Go:
 * `startTemporalDevServer` (scripts/temporal-dev-server.ts) catches {@link TemporalCliNotFoundError} and lets
 * `@temporalio/testing` download a CLI (`TestWorkflowEnvironment.createLocal` without `executable`). That lives
 * there, not here, because a download gives a running server rather than a path.
 *
 * Run directly (`npx tsx scripts/temporal-cli.ts`) it prints the path on stdout (progress goes to stderr).
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const TEMPORAL_CLI_VERSION = 'v1.5.1';
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';

export interface TemporalCliOptions {
  /** Project root; `.tools/` lives under it. Default: the parent of this file's directory. */
  projectRoot?: string;
  /** Progress sink. Default: stderr. */
  log?: (line: string) => void;
}

/** Thrown when no CLI is found and none can be built; the message tells the user what to do. */
export class TemporalCliNotFoundError extends Error {
  override name = 'TemporalCliNotFoundError';
}

const defaultProjectRoot = (): string => resolve(dirname(fileURLToPath(import.meta.url)), '..');
const defaultLog = (line: string): void => {
  process.stderr.write(`[temporal-cli] ${line}\n`);
};

export function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Looks `name` up on PATH, like `command -v`. */
export function which(name: string, pathEnv = process.env.PATH ?? ''): string | undefined {
  for (const dir of pathEnv.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, output captured; SIGKILL after `timeoutMs`. Never throws. */
export function runCommand(
  cmd: string,
  args: string[],
  timeoutMs: number,
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolvePromise) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolvePromise({ code: -1, stdout, stderr: stderr + String(err) });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** Returns the `--version` line if `path` is a working Temporal CLI, else undefined. */
export async function temporalCliVersion(path: string): Promise<string | undefined> {
  if (!isExecutableFile(path)) return undefined;
  const r = await runCommand(path, ['--version'], 15_000);
  const line = r.stdout.trim().split('\n')[0] ?? '';
  return r.code === 0 && /^temporal version/i.test(line) ? line : undefined;
}

/** A Go toolchain: PATH first, then the usual install locations (/usr/local/go/bin is often not on PATH). */
export function findGo(): string | undefined {
  const candidates = [
    which('go'),
    process.env.GOROOT ? join(process.env.GOROOT, 'bin', 'go') : undefined,
    '/usr/local/go/bin/go',
    join(homedir(), 'go', 'bin', 'go'),
    join(homedir(), 'sdk', 'go', 'bin', 'go'),
    '/usr/lib/go/bin/go',
  ];
  return candidates.find((c): c is string => c !== undefined && isExecutableFile(c));
}

/** Steps 1–3 of the lookup: never builds, never throws. */
export async function findTemporalCli(opts: TemporalCliOptions = {}): Promise<string | undefined> {
  const projectRoot = resolve(opts.projectRoot ?? defaultProjectRoot());
  const log = opts.log ?? defaultLog;
  const candidates: Array<[string, string | undefined]> = [
    ['PATH', which('temporal')],
    ['$TEMPORAL_CLI', process.env.TEMPORAL_CLI || undefined],
    ['.tools', join(projectRoot, '.tools', 'temporal')],
  ];
  for (const [source, path] of candidates) {
    if (!path) continue;
    if (!existsSync(path)) {
      if (source === '$TEMPORAL_CLI') log(`TEMPORAL_CLI=${path} does not exist; ignoring it`);
      continue;
    }
    const version = await temporalCliVersion(path);
    if (version) {
      log(`using ${path} (${source}): ${version}`);
      return path;
    }
    log(`${path} (${source}) does not answer 'temporal --version'; ignoring it`);
  }
  return undefined;
}

/**
 * `GOBIN=<gobin> go install -v <targets...>`, progress streamed to `log` (a package count every 15 s, and every
 * line that is not a bare package path). Throws with the last 40 lines of output when it fails. Shared by every
 * Go tool this project builds (the CLI here; the Temporal server, its schema tool and the Web UI in
 * scripts/temporal-server.ts).
 */
export async function goInstall(opts: {
  go: string;
  targets: string[];
  gobin: string;
  log: (line: string) => void;
  /** Said in the error message when the build fails. */
  hint?: string;
}): Promise<{ seconds: number; packages: number }> {
  const { go, targets, gobin, log } = opts;
  mkdirSync(gobin, { recursive: true });
  log(`GOBIN=${gobin} ${go} install ${targets.join(' ')} (a few minutes on a cold cache)`);
  const started = Date.now();
  const elapsed = () => `${Math.round((Date.now() - started) / 1000)}s`;
  // The toolchain's own bin dir goes first on PATH so `go` can find its helpers even when it is not on PATH.
  const env = { ...process.env, GOBIN: gobin, PATH: `${dirname(go)}${delimiter}${process.env.PATH ?? ''}` };
  const tail: string[] = [];
  let packages = 0;
  const code = await new Promise<number | null>((resolvePromise) => {
    // -v prints each package as it is compiled: that is our progress counter.
    const child = spawn(go, ['install', '-v', ...targets], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const heartbeat = setInterval(
      () => log(`still building… ${packages} packages compiled, ${elapsed()}`),
      15_000,
    );
    let buffered = '';
    const onData = (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        tail.push(line);
        if (tail.length > 40) tail.shift();
        // -v prints bare package paths (no spaces): only counted. `go: downloading ...`, compiler errors and
        // everything else are worth showing.
        if (/^\S+$/.test(line)) packages++;
        else log(`go: ${line.replace(/^go: /, '')}`);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (err) => {
      tail.push(String(err));
      clearInterval(heartbeat);
      resolvePromise(-1);
    });
    child.on('close', (c) => {
      clearInterval(heartbeat);
      resolvePromise(c);
    });
  });
  if (code !== 0) {
    throw new Error(
      `'go install ${targets.join(' ')}' failed (exit ${code}) after ${elapsed()}. Last output:\n${tail.join('\n')}` +
        (opts.hint ? `\n${opts.hint}` : ''),
    );
  }
  log(`built in ${elapsed()} (${packages} packages compiled)`);
  return { seconds: (Date.now() - started) / 1000, packages };
}

/** Step 4: `GOBIN=<project>/.tools go install ...@v1.5.1`, progress streamed to `log`. */
export async function buildTemporalCli(go: string, projectRoot: string, log: (line: string) => void) {
  const gobin = join(projectRoot, '.tools');
  log('building the Temporal CLI');
  await goInstall({
    go,
    targets: [`${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}`],
    gobin,
    log,
    hint: 'The CLI needs Go >= 1.25 (older Go >= 1.21 fetches it automatically through GOTOOLCHAIN=auto).',
  });
  const binary = join(gobin, 'temporal');
  const version = await temporalCliVersion(binary);
  if (!version) throw new Error(`'go install' succeeded but ${binary} does not answer --version`);
  log(`built ${binary}: ${version}`);
  return binary;
}

export async function findOrBuildTemporalCli(opts: TemporalCliOptions = {}): Promise<string> {
  const projectRoot = resolve(opts.projectRoot ?? defaultProjectRoot());
  const log = opts.log ?? defaultLog;
  const found = await findTemporalCli({ projectRoot, log });
  if (found) return found;
  const go = findGo();
  if (go) return buildTemporalCli(go, projectRoot, log);
  throw new TemporalCliNotFoundError(
    [
      'Temporal CLI not found (looked for `temporal` on PATH, $TEMPORAL_CLI and ' +
        `${join(projectRoot, '.tools', 'temporal')}) and no Go toolchain to build it. Do one of:`,
      `  - install Go >= 1.25 (https://go.dev/dl/), then rerun; it runs: GOBIN=${join(projectRoot, '.tools')} ` +
        `go install ${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}`,
      '  - install the Temporal CLI (https://docs.temporal.io/cli#install, e.g. `brew install temporal` or ' +
        '`curl -sSf https://temporal.download/cli.sh | sh`) and put it on PATH, or set TEMPORAL_CLI=/path/to/temporal',
      '  - or point TEMPORAL_ADDRESS at a running Temporal server (host:port) so no dev server is needed',
    ].join('\n'),
  );
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const started = Date.now();
  findOrBuildTemporalCli()
    .then((path) => {
      defaultLog(`ready in ${((Date.now() - started) / 1000).toFixed(1)}s`);
      process.stdout.write(`${path}\n`);
    })
    .catch((err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
}
