import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { loadPkiConfig, PROJECT_ROOT } from '../config/load.js';
import { runtimeSettings } from '../config/runtime.js';
import { startInProcess } from '../runtime/in-process.js';
import {
  connectTemporal,
  openMigratedDatabase,
  openProvisionedTokens,
  payloadCodecOf,
} from '../runtime/services.js';
import { startTemporalDevServer } from './temporal-dev-server.js';

/**
 * `npm run bench`: enrollment latency as a device sees it. Brings up a throwaway stack (in-memory
 * Temporal dev server, a fresh SoftHSM token, DATABASE_URL or PGlite) and times N sequential
 * enrollments by the real micromdm scepclient, each with its own key and transaction.
 */
const run = promisify(execFile);
const { values } = parseArgs({ options: { n: { type: 'string', default: '20' } } });
const count = Number(values.n);

const work = mkdtempSync(join(tmpdir(), 'device-pki-bench-'));
process.env.PKI_DATA_DIR = work;
process.env.TEMPORAL_LOG_LEVEL ??= 'WARN';
// N back-to-back enrollments from one address would exceed the per-IP SCEP rate limit: off unless set.
process.env.SCEP_RATE_PER_MINUTE ??= '0';
const settings = { ...runtimeSettings(), api: { host: '127.0.0.1', port: 0 } };
const config = loadPkiConfig();
const temporal = await startTemporalDevServer({
  projectRoot: PROJECT_ROOT,
  port: 7299,
  headless: true,
  dbFile: ':memory:',
  log: () => {},
});
settings.temporalAddress = temporal.address;
const tokens = await openProvisionedTokens(settings, config);
const codec = payloadCodecOf(tokens.get('data'));
const database = await openMigratedDatabase(settings);
const client = await connectTemporal(settings, codec);
const pipeline = await startInProcess({ settings, config, tokens, codec, database, client });
const url = `${pipeline.api.url}/scep`;
const benchProfile = config.profiles[0]!;
if (benchProfile.mdm.type !== 'static-challenge')
  throw new Error('the bench needs a static-challenge profile first');
const challenge = benchProfile.mdm.challenge;

const times: number[] = [];
try {
  for (let i = 0; i <= count; i++) {
    const dir = join(work, `device-${i}`);
    await run('mkdir', ['-p', dir]);
    await run('openssl', ['genrsa', '-traditional', '-out', join(dir, 'key.pem'), '2048']);
    const started = performance.now();
    await run(
      'scepclient',
      [
        '-server-url',
        url,
        '-challenge',
        challenge,
        '-private-key',
        join(dir, 'key.pem'),
        '-certificate',
        join(dir, 'cert.pem'),
        '-cn',
        `bench-${i}`,
      ],
      { cwd: dir },
    );
    // The first enrollment warms caches (workflow bundle load, HSM key handles): not counted.
    if (i > 0) times.push(performance.now() - started);
  }
} finally {
  await pipeline.stop();
  await client.connection.close();
  await database.close();
  await tokens.close();
  await temporal.stop();
  rmSync(work, { recursive: true, force: true });
}

times.sort((a, b) => a - b);
const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
console.log(
  `scepclient enrollment latency over ${times.length} runs (${database.kind}): ` +
    `median ${at(0.5).toFixed(0)} ms, p90 ${at(0.9).toFixed(0)} ms, min ${times[0]!.toFixed(0)} ms, max ${times[times.length - 1]!.toFixed(0)} ms`,
);
process.exit(0);
