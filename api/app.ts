import type { Client } from '@temporalio/client';
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { Database } from '../db/client.js';
import type { HsmToken } from '../hsm/token.js';
import { mdmRoutes } from './mdm/index.js';
import { operatorRoutes } from './operator/index.js';
import { revocationRoutes, revocationService } from './revocation-routes.js';
import { type ScepDeps, scepRoutes } from './scep/routes.js';

export interface AppDeps extends ScepDeps {
  /** Read by the CRL, OCSP and operator routes; SCEP itself goes through Temporal. */
  db: Database;
  /** The HSM, where this process holds it: signs OCSP responses (and a CA's first CRL on demand). */
  token?: HsmToken;
  /** The operator API and MDM removal webhooks signal and query device lifecycles through it. */
  temporal: Client;
}

/** The HTTP surface: SCEP and a health probe. Errors never escape as crashes or stack traces. */
export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.text('ok'));
  const revocation = revocationService(deps);
  app.route('/', scepRoutes({ ...deps, revocation }));
  app.route('/', revocationRoutes(revocation));
  const integration = { config: deps.config, db: deps.db, temporal: deps.temporal };
  app.route('/', mdmRoutes(integration));
  app.route('/', operatorRoutes(integration));
  app.notFound((c) =>
    jsonApi(c.req.path)
      ? c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404)
      : c.text(`no route for ${c.req.method} ${c.req.path}`, 404),
  );
  app.onError((err, c) => {
    if (err instanceof HTTPException) return err.getResponse();
    // Temporal, the database or the HSM unreachable: the caller may retry; nothing was issued.
    console.error(`[api] ${c.req.method} ${c.req.path}: ${err.stack ?? err}`);
    return jsonApi(c.req.path)
      ? c.json({ error: 'service temporarily unavailable, retry later' }, 503)
      : c.text('enrollment service temporarily unavailable, retry later', 503);
  });
  return app;
}

/** The operator and integration APIs answer JSON; SCEP, CRL and OCSP answer what their clients read. */
function jsonApi(path: string): boolean {
  return path.startsWith('/operator/') || path.startsWith('/mdm/') || path.startsWith('/jamf/');
}
