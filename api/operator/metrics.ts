/**
 * GET /metrics on the operator listener (Prometheus scrapes it with the operator token or an
 * operator certificate): the fleet metrics and the key inventory's, counted from Postgres and Temporal
 * at scrape time, and
 * this API process's own (HSM operations, Node.js runtime). Never on the public SCEP port.
 */
import { Hono } from 'hono';
import { keyInventoryRegistry } from '../../activities/keys/metrics.js';
import { metricsResponse } from '../../runtime/metrics/exposition.js';
import { type FleetSources, fleetRegistry } from '../../runtime/metrics/fleet.js';
import { type OperatorAuthOptions, type OperatorEnv, operatorAuth } from '../http/auth.js';
import { rateLimit } from '../http/rate-limit.js';

export function metricsRoutes(
  deps: FleetSources & { env?: NodeJS.ProcessEnv; certificate?: OperatorAuthOptions['certificate'] },
): Hono<OperatorEnv> {
  const fleet = fleetRegistry(deps);
  // The key inventory is fleet-wide too: read from the table the token-holding processes write.
  const keys = keyInventoryRegistry(deps.db);
  const app = new Hono<OperatorEnv>();
  app.use('/metrics', rateLimit('operator'));
  app.use('/metrics', operatorAuth({ env: deps.env, certificate: deps.certificate }));
  app.get('/metrics', (c) => metricsResponse(c, [fleet, keys]));
  return app;
}
