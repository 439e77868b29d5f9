/**
 * The HTTP surfaces. The public one (plain HTTP, RFC 8894 allows it): SCEP, CRLs, OCSP and a health
 * probe. The operators' one (HTTPS, optional client certificates): the operator API, the MDM
 * webhooks and the codec server, and SCEP again for clients that prefer TLS. Errors never escape as
 * crashes or stack traces: JSON for the operator and integration APIs, text for the rest.
 */
import type { Client } from '@temporalio/client';
import type { PayloadCodec } from '@temporalio/common';
import { type Env, Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { GenerationReader } from '../activities/ca/local-hsm/generations.js';
import type { Database } from '../db/client.js';
import { healthRoutes, type Readiness } from '../runtime/readiness.js';
import { consoleRoutes } from './console/index.js';
import type { OperatorAuthOptions } from './http/auth.js';
import { requestLog, requestLogging } from './http/request-log.js';
import { mdmRoutes } from './mdm/index.js';
import { codecRoutes } from './operator/codec.js';
import { operatorRoutes } from './operator/index.js';
import { metricsRoutes } from './operator/metrics.js';
import type { Responder } from './revocation/ocsp-responders.js';
import { revocationRoutes } from './revocation/routes.js';
import { revocationService } from './revocation/service.js';
import { type ScepDeps, scepRoutes } from './scep/routes.js';

export interface AppDeps extends ScepDeps {
  /** Read by the CRL, OCSP and operator routes; SCEP itself goes through Temporal. */
  db: Database;
  /** The operator API and MDM removal webhooks signal and query workflows through it. */
  temporal: Client;
  /** The delegated OCSP responder of an issuing CA (its key in the RA token); none: tryLater. */
  responderOf?: (issuingCa: string) => Promise<Responder | undefined>;
  /** Opens and seals Temporal payloads for the codec server. */
  codec: PayloadCodec;
  /** Checks an operator's client certificate (api/operator/certificate-auth.ts). */
  operatorCertificate?: OperatorAuthOptions['certificate'];
  /** The profiles' CA generations (issuing-CA rotation), shared with the RAs' view. */
  generations?: GenerationReader;
  /** What /readyz reports (api/health.ts); without it the process is ready once it listens. */
  readiness?: Readiness;
}

/** SCEP, CRLs, OCSP, /healthz and /readyz. */
export function createPublicApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.use('*', requestLogging('public'));
  mountPublic(app, deps);
  return withErrors(app);
}

/**
 * The operators' surface: the public routes, the operator API, /metrics, the MDM webhooks, the codec
 * server and the console.
 */
export function createOperatorApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.use('*', requestLogging('operator'));
  mountPublic(app, deps);
  const integration = { config: deps.config, db: deps.db, temporal: deps.temporal };
  app.route('/', mdmRoutes(integration));
  // Errors handled inside: the console calls this app in-process and reads the same JSON errors.
  const operatorApi = withErrors(
    operatorRoutes({ ...integration, ras: deps.ras, certificate: deps.operatorCertificate }),
  );
  app.route('/', operatorApi);
  app.route('/', metricsRoutes({ ...integration, certificate: deps.operatorCertificate }));
  app.route('/', codecRoutes({ codec: deps.codec, auth: { certificate: deps.operatorCertificate } }));
  app.route(
    '/',
    consoleRoutes({ ...integration, operatorApi, auth: { certificate: deps.operatorCertificate } }),
  );
  return withErrors(app);
}

function mountPublic(app: Hono, deps: AppDeps): void {
  app.route('/', healthRoutes(deps.readiness));
  const revocation = revocationService(deps);
  app.route('/', scepRoutes({ ...deps, revocation }));
  app.route('/', revocationRoutes(revocation));
}

function withErrors<E extends Env>(app: Hono<E>): Hono<E> {
  app.notFound((c) =>
    jsonApi(c.req.path)
      ? c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404)
      : c.text(`no route for ${c.req.method} ${c.req.path}`, 404),
  );
  app.onError((err, c) => {
    if (err instanceof HTTPException) return err.getResponse();
    // Temporal, the database or the HSM unreachable: the caller may retry; nothing was issued.
    requestLog(c).error({ err }, 'request failed: dependency unavailable');
    return jsonApi(c.req.path)
      ? c.json({ error: 'service temporarily unavailable, retry later' }, 503)
      : c.text('enrollment service temporarily unavailable, retry later', 503);
  });
  return app;
}

/** The operator and integration APIs answer JSON; SCEP, CRL and OCSP answer what their clients read. */
function jsonApi(path: string): boolean {
  return (
    path.startsWith('/operator/') ||
    path.startsWith('/mdm/') ||
    path.startsWith('/jamf/') ||
    path.startsWith('/codec/')
  );
}
