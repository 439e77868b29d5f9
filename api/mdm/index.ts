/**
 * The API integrations call (MDM webhooks): each route authenticates the integration with its own
 * credential, under its own rate limit, with JSON errors.
 */
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { jsonError } from '../http/errors.js';
import { type RateLimitSettings, rateLimit } from '../http/rate-limit.js';
import { type DeviceRemovedDeps, deviceRemovedRoutes } from './device-removed.js';
import { jamfChallengeRoutes } from './jamf-challenge.js';

const MAX_BODY_BYTES = 64 * 1024;

export function mdmRoutes(deps: DeviceRemovedDeps & { rateLimit?: RateLimitSettings }): Hono {
  const app = new Hono();
  // One bucket per client for every integration route.
  const limit = rateLimit('mdm', deps.rateLimit);
  for (const path of ['/mdm/*', '/jamf/*']) {
    app.use(path, limit);
    app.use(
      path,
      bodyLimit({
        maxSize: MAX_BODY_BYTES,
        onError: () => {
          throw jsonError(413, `request body exceeds ${MAX_BODY_BYTES} bytes`);
        },
      }),
    );
  }
  app.route('/', deviceRemovedRoutes(deps));
  app.route('/', jamfChallengeRoutes(deps));
  return app;
}
