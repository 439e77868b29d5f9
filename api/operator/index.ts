/**
 * The operator API: every route behind operator authentication and its own rate limit, JSON in and
 * out. Thin: each call is a Temporal signal, query, start or visibility list, or a database read.
 */
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { type OperatorAuthOptions, type OperatorEnv, operatorAuth } from '../http/auth.js';
import { jsonError } from '../http/errors.js';
import { type RateLimitSettings, rateLimit } from '../http/rate-limit.js';
import type { ProfileRa } from '../ra.js';
import { auditRoutes } from './audit.js';
import { caRoutes } from './cas.js';
import { certificateRoutes } from './certificates.js';
import { challengeRoutes } from './challenges.js';
import { deviceRoutes, type OperatorDeps } from './devices.js';
import { enrollmentRoutes } from './enrollments.js';
import { eventRoutes } from './events.js';
import { keyRoutes } from './keys.js';
import { openApiRoutes } from './openapi.js';
import { reportRoutes } from './reports.js';

const MAX_BODY_BYTES = 64 * 1024;

export function operatorRoutes(
  deps: OperatorDeps & {
    env?: NodeJS.ProcessEnv;
    rateLimit?: RateLimitSettings;
    certificate?: OperatorAuthOptions['certificate'];
    /** The SCEP endpoints' RA material: a rotation certifies the RA key again under the new CA. */
    ras?: Map<string, ProfileRa>;
  },
): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();
  app.use('/operator/*', rateLimit('operator', deps.rateLimit));
  app.use(
    '/operator/*',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw jsonError(413, `request body exceeds ${MAX_BODY_BYTES} bytes`);
      },
    }),
  );
  app.use('/operator/*', operatorAuth({ env: deps.env, certificate: deps.certificate }));
  app.route('/', deviceRoutes(deps));
  app.route('/', certificateRoutes(deps));
  app.route('/', enrollmentRoutes(deps));
  app.route('/', eventRoutes(deps));
  app.route('/', challengeRoutes(deps));
  app.route('/', reportRoutes(deps));
  app.route('/', auditRoutes(deps));
  app.route('/', keyRoutes(deps));
  app.route('/', caRoutes(deps));
  app.route('/', openApiRoutes());
  return app;
}
