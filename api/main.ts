import { startupConfig } from '../config/startup.js';
import { MAX_SCEP_BODY_BYTES } from '../runtime/in-process.js';
import { connectTemporal, openMigratedDatabase, openToken } from '../runtime/services.js';
import { EnrollmentGateway } from './enrollment-gateway.js';
import { loadRegistrationAuthorities } from './ra.js';
import { startApiServer } from './server.js';

/** `npm run api`: the SCEP endpoint. Stateless: run as many replicas as the load needs. */
// Before anything is opened: a production start with a development setting stops here, naming it.
const { settings, config } = startupConfig('api', { pinVariables: ['HSM_PIN'], servesOperators: true });
const token = await openToken(settings);
const client = await connectTemporal(settings);
const database = await openMigratedDatabase(settings);
const server = await startApiServer(
  {
    config,
    ras: await loadRegistrationAuthorities(token, config),
    gateway: new EnrollmentGateway(client),
    temporal: client,
    maxBodyBytes: MAX_SCEP_BODY_BYTES,
    db: database.db,
    token,
  },
  settings.api,
);
console.log(`[api] SCEP on ${server.url}/scep`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, async () => {
    await server.close();
    await client.connection.close();
    await database.close();
    await token.close();
    process.exit(0);
  });
}
