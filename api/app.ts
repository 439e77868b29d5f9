import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { type ScepDeps, scepRoutes } from './scep/routes.js';

export type AppDeps = ScepDeps;

/** The HTTP surface: SCEP and a health probe. Errors never escape as crashes or stack traces. */
export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.text('ok'));
  app.route('/', scepRoutes(deps));
  app.notFound((c) => c.text(`no route for ${c.req.method} ${c.req.path}`, 404));
  app.onError((err, c) => {
    if (err instanceof HTTPException) return err.getResponse();
    // Temporal or the HSM unreachable: the device may retry; nothing was issued.
    console.error(`[api] ${c.req.method} ${c.req.path}: ${err.stack ?? err}`);
    return c.text('enrollment service temporarily unavailable, retry later', 503);
  });
  return app;
}
