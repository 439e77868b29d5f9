/**
 * The codec server (Temporal's convention: POST <endpoint>/encode and /decode with
 * `{"payloads": [{"metadata": {...base64}, "data": base64}]}`), so authorised operators read
 * encrypted histories in the Web UI ("Codec Server" setting) and with `temporal workflow show
 * --codec-endpoint ... --codec-auth ...`, and nobody else does. CORS admits the Web UI's origins
 * (CODEC_CORS_ORIGINS, comma-separated; default the dev server's UI); every call is an operator's.
 */
import type { Payload, PayloadCodec } from '@temporalio/common';
import { Hono } from 'hono';
import { cors } from 'hono/cors';
import { z } from 'zod';
import { type OperatorAuthOptions, type OperatorEnv, operatorAuth } from '../http/auth.js';
import { jsonError, parseJsonBody } from '../http/errors.js';

const DEFAULT_ORIGINS = ['http://127.0.0.1:8233', 'http://localhost:8233'];
const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
const body = z.object({
  payloads: z
    .array(z.object({ metadata: z.record(z.string(), base64).default({}), data: base64.optional() }))
    .max(1000),
});

export function codecRoutes(deps: { codec: PayloadCodec; auth: OperatorAuthOptions }): Hono<OperatorEnv> {
  const env = deps.auth.env ?? process.env;
  const origins = (env.CODEC_CORS_ORIGINS ?? DEFAULT_ORIGINS.join(','))
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  const app = new Hono<OperatorEnv>();
  app.use(
    '/codec/*',
    cors({
      origin: origins,
      allowMethods: ['POST', 'OPTIONS'],
      allowHeaders: ['Content-Type', 'Authorization', 'X-Namespace'],
      credentials: true,
      maxAge: 600,
    }),
  );
  app.use('/codec/*', operatorAuth(deps.auth));
  for (const action of ['encode', 'decode'] as const)
    app.post(`/codec/${action}`, async (c) => {
      const { payloads } = parseJsonBody(await c.req.text(), body);
      const given = payloads.map(
        (p): Payload => ({
          metadata: Object.fromEntries(
            Object.entries(p.metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')]),
          ),
          ...(p.data !== undefined ? { data: Buffer.from(p.data, 'base64') } : {}),
        }),
      );
      let done: Payload[];
      try {
        done = action === 'encode' ? await deps.codec.encode(given) : await deps.codec.decode(given);
      } catch (err) {
        throw jsonError(422, `cannot ${action}: ${(err as Error).message}`);
      }
      c.header('Cache-Control', 'no-store');
      return c.json({
        payloads: done.map((p) => ({
          metadata: Object.fromEntries(
            Object.entries(p.metadata ?? {}).map(([k, v]) => [
              k,
              Buffer.from(v ?? new Uint8Array()).toString('base64'),
            ]),
          ),
          data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
        })),
      });
    });
  return app;
}
