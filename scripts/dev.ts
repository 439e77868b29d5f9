import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PROJECT_ROOT } from '../config/load.js';
import { startupConfig } from '../config/startup.js';
import { startInProcess } from '../runtime/in-process.js';
import { rootCaFile } from '../runtime/operator-tls.js';
import {
  connectTemporal,
  openMigratedDatabase,
  openProvisionedTokens,
  payloadCodecOf,
} from '../runtime/services.js';
import { startTemporalDevServer } from './temporal-dev-server.js';

/**
 * `npm run dev`: the whole pipeline on one machine, in one process beside the Temporal dev server:
 * SoftHSM token with the CA hierarchy, database and migrations, both worker queues, the SCEP API.
 *
 * Environment knobs for running a second stack beside the default one (`npm run bench:load` does):
 * TEMPORAL_PORT and TEMPORAL_UI_PORT (default 7233 and 8233) for the dev server; with PKI_DATA_DIR
 * set, its SQLite file is <PKI_DATA_DIR>/temporal.sqlite (default .data/temporal.sqlite).
 * CA_ISSUANCE defaults to `local` here: this one process holds every token, so the workflow worker
 * signs in a local activity (config/runtime.ts); CA_ISSUANCE=queue runs the split of production.
 */
const log = (line: string) => console.log(`[dev] ${line}`);
process.env.CA_ISSUANCE ??= 'local';
const { settings, config } = startupConfig('dev', {
  pinVariables: ['HSM_RA_PIN', 'HSM_CA_PIN', 'HSM_DATA_PIN'],
  servesOperators: true,
});

const env = process.env;
const temporal = await startTemporalDevServer({
  projectRoot: PROJECT_ROOT,
  log,
  ...(env.TEMPORAL_PORT ? { port: Number(env.TEMPORAL_PORT) } : {}),
  ...(env.TEMPORAL_UI_PORT ? { uiPort: Number(env.TEMPORAL_UI_PORT) } : {}),
  ...(env.PKI_DATA_DIR ? { dbFile: join(env.PKI_DATA_DIR, 'temporal.sqlite') } : {}),
  uiCodecEndpoint: `https://${settings.operator.hostnames.includes('localhost') ? 'localhost' : settings.operator.host}:${settings.operator.port}/codec`,
});
settings.temporalAddress = temporal.address;

const tokens = await openProvisionedTokens(settings, config);
const { ra, ca, data } = settings.hsm.tokens;
log(
  `HSM tokens ready: RA "${ra.label}", CA "${ca.label}", data "${data.label}" (${settings.hsm.library ?? settings.hsm.softhsmDir})`,
);
const codec = payloadCodecOf(tokens.get('data'));
const database = await openMigratedDatabase(settings);
log(
  `database ready (${database.kind === 'postgres' ? 'Postgres from DATABASE_URL' : `PGlite in ${settings.pgliteDir}`})`,
);
const client = await connectTemporal(settings, codec);
// The console and the operator API need a credential: a dev token of its own, kept across restarts.
env.OPERATOR_TOKEN ??= devOperatorToken(join(dirname(settings.pgliteDir), 'dev-operator-token'));
// The console links each enrollment and device to its workflow in this Web UI.
if (temporal.uiUrl) env.TEMPORAL_UI_URL ??= temporal.uiUrl;
const pipeline = await startInProcess({ settings, config, tokens, codec, database, client });

const url = pipeline.api.url;
const profile = config.profiles[0]!;
const challenge = profile.mdm.type === 'static-challenge' ? profile.mdm.challenge : '<from your MDM>';
console.log(`
  SCEP URL        ${url}/scep   (profile "${profile.name}"; also ${url}/cgi-bin/pkiclient.exe)
  Dev challenge   ${challenge}
  Temporal Web UI ${temporal.uiUrl ?? '(external cluster: see its own UI)'}
                  (payloads are encrypted: the UI decodes them through the codec server below,
                  with an operator client certificate in the browser)
  Operator API    ${pipeline.api.operatorUrl}   (HTTPS; trust ${rootCaFile(settings)};
                  Authorization: Bearer $OPERATOR_TOKEN, or an operator client certificate)
  Console         ${pipeline.api.operatorUrl}/console   (log in with any name and the operator token)
  Operator token  ${env.OPERATOR_TOKEN}
  Codec server    ${pipeline.api.operatorUrl}/codec   (temporal workflow show --codec-endpoint ...)
  Metrics         ${pipeline.api.operatorUrl}/metrics   (Prometheus; same credential as the operator API)
  Enroll a device:
    openssl genrsa -traditional -out key.pem 2048
    scepclient -server-url ${url}/scep -challenge ${challenge} \\
      -private-key key.pem -certificate cert.pem -cn laptop-001
  Ctrl-C stops everything.
`);

let stopping = false;
async function stop(code: number) {
  if (stopping) return;
  stopping = true;
  log('stopping');
  await pipeline.stop();
  await client.connection.close();
  await database.close();
  await tokens.close();
  await temporal.stop();
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
pipeline.failed.catch((err) => {
  console.error(`[dev] ${err}`);
  void stop(1);
});

/** A random operator token for this dev data directory (never for production: set OPERATOR_TOKEN). */
function devOperatorToken(file: string): string {
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dirname(file), { recursive: true });
  const token = randomBytes(24).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return token;
}
