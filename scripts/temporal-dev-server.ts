/**
 * The local Temporal: `temporal server start-dev` on a SQLite file, with this project's search attributes.
 *
 * - `TEMPORAL_ADDRESS` set: nothing is started; we connect, make sure the search attributes exist in the
 *   namespace, and return a no-op `stop()`.
 * - otherwise the CLI from scripts/temporal-cli.ts (PATH, $TEMPORAL_CLI, .tools/, or built with Go) is spawned,
 *   we wait (≤ 60 s) until the frontend answers, then verify the search attributes (a database file created by
 *   an older version of this script may lack some) and register the missing ones.
 * - no CLI and no Go: last resort, `@temporalio/testing` (dev dependency) downloads a CLI — needs internet.
 *
 * Run directly (`npx tsx scripts/temporal-dev-server.ts [--port 7233] [--ui-port 8233] [--headless]
 * [--db-file .data/temporal.sqlite]`) it runs the server in the foreground until Ctrl-C.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Connection } from '@temporalio/client';
import { defineSearchAttributeKey, type SearchAttributeType } from '@temporalio/common';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes.js';
import { findOrBuildTemporalCli, TemporalCliNotFoundError } from './temporal-cli.js';

/** Search attributes operators filter on (see DESIGN.md, "Names operators see"). CLI type names. */
export const SEARCH_ATTRIBUTES = {
  PkiProfile: 'Keyword',
  DeviceId: 'Keyword',
  PkiStatus: 'Keyword',
  CertNotAfter: 'Datetime',
  PkiOutcome: 'Keyword',
  CaRotationState: 'Keyword',
} as const;

type CliSearchAttributeType = (typeof SEARCH_ATTRIBUTES)[keyof typeof SEARCH_ATTRIBUTES];
const SDK_TYPE: Record<CliSearchAttributeType, SearchAttributeType> = {
  Keyword: 'KEYWORD',
  Datetime: 'DATETIME',
};

/** The same attributes as SDK keys, e.g. for `TestWorkflowEnvironment.createLocal({ server: { searchAttributes } })`. */
export function searchAttributeKeys() {
  return Object.entries(SEARCH_ATTRIBUTES).map(([name, type]) =>
    defineSearchAttributeKey(name, SDK_TYPE[type]),
  );
}

export interface TemporalDevServerOptions {
  projectRoot: string;
  /** Frontend gRPC port. Default 7233. */
  port?: number;
  /** Web UI port. Default 8233. */
  uiPort?: number;
  /** No Web UI. Default false. */
  headless?: boolean;
  /**
   * The codec server the Web UI decodes payloads with (the product's `/codec` on the operator
   * listener): the browser calls it, with the operator's client certificate.
   */
  uiCodecEndpoint?: string;
  /** SQLite file, relative to projectRoot. Default `.data/temporal.sqlite`. Use ':memory:' for a throwaway server. */
  dbFile?: string;
  /** Namespace the search attributes are ensured in (created at start if not 'default'). Default 'default'. */
  namespace?: string;
  /** Progress lines. Default: stderr. */
  log?: (line: string) => void;
  /** Forward the server's own stdout/stderr to `log` (it is always kept for error messages). Default false. */
  forwardServerOutput?: boolean;
  /** Extra `--dynamic-config-value KEY=JSON` pairs. None are needed by default. */
  dynamicConfig?: Record<string, unknown>;
  /** How long to wait for the frontend. Default 60 s. */
  startTimeoutMs?: number;
  /** Allow the last-resort download through @temporalio/testing when no CLI and no Go exist. Default true. */
  allowDownload?: boolean;
}

export interface TemporalDevServer {
  /** host:port of the frontend. */
  address: string;
  namespace: string;
  /** Web UI, when one was started. */
  uiUrl?: string;
  /** Resolves when the server process exits by itself or through stop(); never resolves for an external server. */
  exited: Promise<number | null>;
  /** SIGTERM, wait for exit, SIGKILL after 10 s. Idempotent. No-op for an external server (TEMPORAL_ADDRESS). */
  stop(): Promise<void>;
}

const defaultLog = (line: string): void => {
  process.stderr.write(`[temporal] ${line}\n`);
};
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const errorMessage = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Makes sure every attribute of SEARCH_ATTRIBUTES exists in `namespace` with the right type. */
export async function ensureSearchAttributes(
  connection: Connection,
  namespace: string,
  log: (line: string) => void = defaultLog,
): Promise<void> {
  const expected = new Map(
    Object.entries(SEARCH_ATTRIBUTES).map(([name, type]) => [
      name,
      { type, code: encodeSearchAttributeIndexedValueType(SDK_TYPE[type])! },
    ]),
  );
  const list = async () =>
    (await connection.operatorService.listSearchAttributes({ namespace })).customAttributes ?? {};
  const existing = await list();
  const missing: Record<string, number> = {};
  for (const [name, { type, code }] of expected) {
    const have = existing[name];
    if (have === undefined || have === null) missing[name] = code;
    else if (have !== code) {
      throw new Error(
        `search attribute ${name} exists in namespace '${namespace}' with another type (indexed value type ${have}, ` +
          `want ${type}); a type cannot be changed: use a fresh database file or another namespace`,
      );
    }
  }
  const names = Object.keys(missing);
  if (names.length === 0) return;
  log(`registering search attributes in '${namespace}': ${names.join(', ')}`);
  await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: missing });
  // The SQL visibility store applies this synchronously; re-read to be sure, the way a workflow would see it.
  for (let i = 0; i < 20; i++) {
    const now = await list();
    if (names.every((n) => now[n] !== undefined && now[n] !== null)) return;
    await sleep(250);
  }
  throw new Error(
    `search attributes ${names.join(', ')} still missing in '${namespace}' after registering them`,
  );
}

/** Connects with retries until `deadline`; `alive()` false aborts early (the server process died). */
async function connectWithRetry(
  address: string,
  deadline: number,
  alive: () => string | undefined,
): Promise<Connection> {
  let lastError: unknown;
  while (Date.now() < deadline) {
    const dead = alive();
    if (dead) throw new Error(dead);
    try {
      return await Connection.connect({ address, connectTimeout: '2s' });
    } catch (err) {
      lastError = err;
      await sleep(250);
    }
  }
  throw new Error(`Temporal frontend at ${address} did not answer in time: ${errorMessage(lastError)}`);
}

/** Retries ensureSearchAttributes until `deadline`: right after start-up the namespace may not be served yet. */
async function ensureWithRetry(
  connection: Connection,
  namespace: string,
  deadline: number,
  log: (l: string) => void,
) {
  for (;;) {
    try {
      return await ensureSearchAttributes(connection, namespace, log);
    } catch (err) {
      if (/another type/.test(errorMessage(err)) || Date.now() > deadline) throw err;
      await sleep(500);
    }
  }
}

function assertPortFree(port: number, what: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `${what} port 127.0.0.1:${port} is in use (${err.code}). Is a Temporal dev server already running? ` +
            `Reuse it with TEMPORAL_ADDRESS=127.0.0.1:${port}, stop it, or pick other ports.`,
        ),
      ),
    );
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () => srv.close(() => resolvePromise()));
  });
}

export async function startTemporalDevServer(opts: TemporalDevServerOptions): Promise<TemporalDevServer> {
  const log = opts.log ?? defaultLog;
  const namespace = opts.namespace ?? 'default';
  const timeoutMs = opts.startTimeoutMs ?? 60_000;

  const external = process.env.TEMPORAL_ADDRESS;
  if (external) {
    log(`TEMPORAL_ADDRESS=${external}: using that server, not starting one`);
    const connection = await connectWithRetry(external, Date.now() + timeoutMs, () => undefined);
    try {
      await ensureWithRetry(connection, namespace, Date.now() + timeoutMs, log);
    } finally {
      await connection.close();
    }
    return { address: external, namespace, exited: new Promise<never>(() => {}), stop: async () => {} };
  }

  const port = opts.port ?? 7233;
  const uiPort = opts.uiPort ?? 8233;
  const headless = opts.headless ?? false;
  const address = `127.0.0.1:${port}`;
  const uiUrl = headless ? undefined : `http://127.0.0.1:${uiPort}`;
  const dbFile =
    opts.dbFile === ':memory:'
      ? undefined
      : resolve(opts.projectRoot, opts.dbFile ?? '.data/temporal.sqlite');

  await assertPortFree(port, 'frontend');
  if (!headless) await assertPortFree(uiPort, 'Web UI');

  let cli: string;
  try {
    cli = await findOrBuildTemporalCli({ projectRoot: opts.projectRoot, log });
  } catch (err) {
    if (!(err instanceof TemporalCliNotFoundError) || opts.allowDownload === false) throw err;
    return startDownloadedDevServer({ ...opts, port, uiPort, headless, namespace, dbFile, log }, err);
  }

  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port)];
  if (headless) args.push('--headless');
  else args.push('--ui-port', String(uiPort));
  if (!headless && opts.uiCodecEndpoint) args.push('--ui-codec-endpoint', opts.uiCodecEndpoint);
  if (dbFile) {
    mkdirSync(dirname(dbFile), { recursive: true });
    args.push(
      '--db-filename',
      dbFile,
      '--sqlite-pragma',
      'journal_mode=WAL',
      '--sqlite-pragma',
      'synchronous=NORMAL',
    );
  }
  // 'default' always exists; passing it again is harmless but noisy.
  if (namespace !== 'default') args.push('--namespace', namespace);
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES))
    args.push('--search-attribute', `${name}=${type}`);
  for (const [key, value] of Object.entries(opts.dynamicConfig ?? {})) {
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  }
  args.push('--log-level', 'warn');

  log(`starting ${cli} ${args.join(' ')}`);
  const child: ChildProcess = spawn(cli, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  const onOutput = (d: Buffer) => {
    for (const line of d.toString().split('\n')) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > 30) tail.shift();
      if (opts.forwardServerOutput) log(line);
    }
  };
  child.stdout?.on('data', onOutput);
  child.stderr?.on('data', onOutput);

  let exitCode: number | null | undefined;
  let exitSignal: NodeJS.Signals | null = null;
  let spawnError: Error | undefined;
  const exited = new Promise<number | null>((resolvePromise) => {
    child.once('error', (err) => {
      spawnError = err;
      exitCode = null;
      resolvePromise(null);
    });
    child.once('exit', (code, signal) => {
      exitCode = code;
      exitSignal = signal;
      resolvePromise(code);
    });
  });
  // If our process exits without stop() (crash, process.exit), do not leave a server behind.
  const killOnExit = () => {
    if (exitCode === undefined) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (exitCode === undefined) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => {
          if (exitCode === undefined) {
            log('server did not exit 10 s after SIGTERM; sending SIGKILL');
            child.kill('SIGKILL');
          }
        }, 10_000);
        await exited;
        clearTimeout(timer);
      }
      process.removeListener('exit', killOnExit);
    })();
    return stopping;
  };

  const failure = (what: string) =>
    `${what}\n--- temporal server output (last ${tail.length} lines) ---\n${tail.join('\n') || '(none)'}`;
  const started = Date.now();
  const deadline = started + timeoutMs;
  try {
    const connection = await connectWithRetry(address, deadline, () =>
      exitCode !== undefined
        ? failure(
            `temporal server start-dev exited early (${spawnError ? spawnError.message : `code ${exitCode}, signal ${exitSignal}`})`,
          )
        : undefined,
    );
    try {
      await ensureWithRetry(connection, namespace, deadline, log);
    } finally {
      await connection.close();
    }
  } catch (err) {
    await stop();
    const msg = errorMessage(err);
    throw new Error(msg.includes('--- temporal server output') ? msg : failure(msg));
  }
  log(
    `Temporal dev server ready at ${address} in ${Date.now() - started} ms${uiUrl ? `, Web UI ${uiUrl}` : ''}`,
  );
  return { address, namespace, exited, stop, ...(uiUrl ? { uiUrl } : {}) };
}

/** Last resort (no CLI, no Go): @temporalio/testing downloads a CLI and runs it. Needs internet. */
async function startDownloadedDevServer(
  o: Required<Pick<TemporalDevServerOptions, 'port' | 'uiPort' | 'headless' | 'namespace'>> &
    TemporalDevServerOptions & { dbFile: string | undefined; log: (line: string) => void },
  notFound: Error,
): Promise<TemporalDevServer> {
  o.log('no Temporal CLI and no Go: letting @temporalio/testing download a dev server (needs internet)');
  if (o.dbFile) mkdirSync(dirname(o.dbFile), { recursive: true });
  let env: Awaited<ReturnType<typeof import('@temporalio/testing').TestWorkflowEnvironment.createLocal>>;
  try {
    const { TestWorkflowEnvironment } = await import('@temporalio/testing');
    env = await TestWorkflowEnvironment.createLocal({
      server: {
        ip: '127.0.0.1',
        port: o.port,
        ui: !o.headless,
        ...(o.headless ? {} : { uiPort: o.uiPort }),
        ...(o.dbFile ? { dbFilename: o.dbFile } : {}),
        namespace: o.namespace,
        searchAttributes: searchAttributeKeys(),
        extraArgs: o.dbFile
          ? ['--sqlite-pragma', 'journal_mode=WAL', '--sqlite-pragma', 'synchronous=NORMAL']
          : [],
      },
    });
  } catch (err) {
    throw new Error(`${notFound.message}\n(The download fallback failed too: ${errorMessage(err)})`);
  }
  const address = `127.0.0.1:${o.port}`;
  const connection = await Connection.connect({ address });
  try {
    await ensureSearchAttributes(connection, o.namespace, o.log);
  } finally {
    await connection.close();
  }
  let resolveExited: (code: number | null) => void = () => {};
  const exited = new Promise<number | null>((r) => {
    resolveExited = r;
  });
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= env.teardown().then(() => resolveExited(0));
    return stopping;
  };
  return {
    address,
    namespace: o.namespace,
    exited,
    stop,
    ...(o.headless ? {} : { uiUrl: `http://127.0.0.1:${o.uiPort}` }),
  };
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      'ui-port': { type: 'string' },
      headless: { type: 'boolean' },
      'db-file': { type: 'string' },
      namespace: { type: 'string' },
    },
  });
  const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  try {
    const server = await startTemporalDevServer({
      projectRoot,
      forwardServerOutput: true,
      ...(values.port ? { port: Number(values.port) } : {}),
      ...(values['ui-port'] ? { uiPort: Number(values['ui-port']) } : {}),
      ...(values.headless ? { headless: true } : {}),
      ...(values['db-file'] ? { dbFile: values['db-file'] } : {}),
      ...(values.namespace ? { namespace: values.namespace } : {}),
    });
    if (process.env.TEMPORAL_ADDRESS) {
      defaultLog(`external server ${server.address}: search attributes ensured, nothing to run`);
      process.exit(0);
    }
    defaultLog(`running; Ctrl-C to stop (TEMPORAL_ADDRESS=${server.address})`);
    let stopping = false;
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.on(signal, () => {
        if (stopping) return;
        stopping = true;
        defaultLog(`${signal}: stopping`);
        void server.stop().then(() => process.exit(0));
      });
    }
    const code = await server.exited;
    if (!stopping) {
      defaultLog(`server exited by itself (code ${code})`);
      process.exit(code ?? 1);
    }
  } catch (err) {
    process.stderr.write(`${errorMessage(err)}\n`);
    process.exit(1);
  }
}
