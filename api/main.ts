import { generationReader } from '../activities/ca/local-hsm/generations.js';
import { startKeyInventory } from '../activities/keys/recorder.js';
import { startupConfig } from '../config/startup.js';
import { httpTimeoutsFromEnv } from '../runtime/http-listener.js';
import { MAX_SCEP_BODY_BYTES } from '../runtime/in-process.js';
import { componentLogger } from '../runtime/log.js';
import { loadOperatorTls } from '../runtime/operator-tls.js';
import { dependencyChecks, Readiness } from '../runtime/readiness.js';
import { requestRevocationRefresh } from '../runtime/schedules.js';
import {
  connectTemporal,
  openMigratedDatabase,
  openTokens,
  payloadCodecOf,
  TOKENS_OF,
} from '../runtime/services.js';
import { closeInStages } from '../runtime/shutdown.js';
import { EnrollmentGateway } from './enrollment-gateway.js';
import { operatorCertificateVerifier } from './operator/certificate-auth.js';
import { loadRegistrationAuthorities } from './ra.js';
import { ocspResponderCache, registerOcspResponders } from './revocation/ocsp-responders.js';
import { startApiServer } from './server.js';

/**
 * `npm run api`: SCEP, CRLs and OCSP on plain HTTP, the operator API, MDM webhooks and codec server
 * on HTTPS. Stateless: run as many replicas as the load needs. It opens the RA and data tokens only:
 * no CA key is reachable from the process that faces the internet.
 */
// Before anything is opened: a production start with a development setting stops here, naming it.
const log = componentLogger('api');
const { settings, config } = startupConfig('api', {
  pinVariables: ['HSM_RA_PIN', 'HSM_DATA_PIN'],
  servesOperators: true,
});
const tokens = await openTokens(settings, TOKENS_OF.api);
const ra = tokens.get('ra');
const codec = payloadCodecOf(tokens.get('data'));
const client = await connectTemporal(settings, codec);
const database = await openMigratedDatabase(settings);
const responders = await registerOcspResponders(ra, database.db, config);
for (const issuingCa of responders.missingKeys)
  log.warn({ issuingCa }, 'no OCSP responder key for this CA in the RA token: run provisioning');
// A new responder key waits for its certificate from the CA worker: ask for it now.
if (responders.needCertificate.length > 0) await requestRevocationRefresh(client);
// The RA and data tokens' keys in the inventory (the CA token is listed by its pki-hsm worker).
const keyInventory = await startKeyInventory({ db: database.db, tokens, config });
const readiness = new Readiness(dependencyChecks({ temporal: client, db: database.db, tokens }));
// One view of the CA generations for SCEP and for CRL/OCSP: they agree on the current CA.
const generations = generationReader(database.db);
const server = await startApiServer(
  {
    config,
    ras: await loadRegistrationAuthorities(ra, config, generations),
    generations,
    gateway: new EnrollmentGateway(client),
    caIssuance: settings.caIssuance,
    temporal: client,
    maxBodyBytes: MAX_SCEP_BODY_BYTES,
    db: database.db,
    responderOf: ocspResponderCache(ra, database.db),
    codec,
    operatorCertificate: operatorCertificateVerifier(database.db, config),
    readiness,
  },
  settings.api,
  { ...settings.operator, tls: await loadOperatorTls(ra, config, settings) },
);
log.info(
  { scepUrl: `${server.url}/scep`, operatorUrl: server.operatorUrl },
  `[api] SCEP on ${server.url}/scep; operators on ${server.operatorUrl}`,
);

/**
 * SIGTERM (a deploy, a scale-down): /readyz turns 503 at once so the load balancer stops sending
 * devices here; after API_DRAIN_MS (default 5 s: a few probe intervals) the listeners stop accepting,
 * and the requests in flight are answered (SUCCESS, FAILURE, or PENDING when their workflow is still
 * working: the device polls another replica) before the connections to Temporal, Postgres and the HSM
 * close, each stage logged; a stage still open past the bound below ends the process with status 1.
 */
const drainMs = Number(process.env.API_DRAIN_MS ?? 5_000);
// The longest a request in flight can still take: the rest of its body (API_REQUEST_TIMEOUT_MS), then
// its profile's enrollmentWaitMs for its workflow before it answers PENDING. Past that and 15 s more,
// whatever stage has not closed does not keep the replica alive.
const closeBoundMs =
  httpTimeoutsFromEnv().requestTimeout +
  Math.max(0, ...config.profiles.map((p) => p.enrollmentWaitMs)) +
  15_000;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, async () => {
    readiness.drain();
    log.info({ signal, drainMs }, 'draining, then closing');
    await new Promise((r) => setTimeout(r, drainMs));
    await closeInStages(
      [
        { name: 'listeners (requests in flight are answered)', close: () => server.close() },
        { name: 'key inventory', close: () => keyInventory.stop() },
        { name: 'Temporal connection', close: () => client.connection.close() },
        { name: 'database', close: () => database.close() },
        { name: 'HSM tokens', close: () => tokens.close() },
      ],
      { log, boundMs: closeBoundMs },
    );
    process.exit(0);
  });
}
