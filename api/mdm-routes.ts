/**
 * HTTP endpoints that create one-time challenges: Jamf's SCEPChallenge webhook (Jamf asks for a
 * challenge to put in the SCEP payload it sends a device) and the operator API (NDES-style).
 */
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import { createOneTimeChallenge } from '../activities/mdm/one-time-challenge.js';
import { findProfile } from '../config/load.js';
import type { PkiConfig } from '../config/profile-types.js';
import type { Database } from '../db/client.js';
import { basicAuthMatches, bearerMatches } from './http-auth.js';

export interface MdmRoutesDeps {
  config: PkiConfig;
  db: Database;
  /** Where OPERATOR_TOKEN and the Jamf webhook passwords are read, per request (default process.env). */
  env?: NodeJS.ProcessEnv;
}

const MAX_BODY_BYTES = 64 * 1024;

const jamfWebhookBody = z.object({
  webhook: z
    .object({
      webhookEvent: z.literal('SCEPChallenge'),
      id: z.unknown().optional(),
      name: z.unknown().optional(),
    })
    .loose(),
  event: z
    .object({ payloadIdentifier: z.string().min(1).max(512), scepServerUrl: z.string().optional() })
    .loose(),
});

const operatorBody = z
  .object({
    ttlSeconds: z
      .number()
      .int()
      .min(60)
      .max(30 * 86400)
      .optional(),
    issuedTo: z.string().min(1).max(512).optional(),
  })
  .strict();

export function mdmRoutes(deps: MdmRoutesDeps): Hono {
  const env = deps.env ?? process.env;
  const app = new Hono();
  const limit = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: (c) => c.text(`request body exceeds ${MAX_BODY_BYTES} bytes`, 413),
  });

  app.post('/jamf/:profile/scep-challenge', limit, async (c) => {
    const profile = findProfile(deps.config, c.req.param('profile'));
    if (profile?.mdm.type !== 'jamf') return c.text('no Jamf profile of that name', 404);
    const password = env[profile.mdm.webhookPasswordEnv];
    if (!password) return c.text(`${profile.mdm.webhookPasswordEnv} is not set on this server`, 503);
    if (!basicAuthMatches(c.req.header('authorization'), profile.mdm.webhookUser, password)) {
      c.header('WWW-Authenticate', 'Basic realm="jamf-scep-challenge", charset="UTF-8"');
      return c.text('wrong or missing webhook credentials', 401);
    }
    const body = await jsonOf(c);
    if (body === undefined) return c.text('body is not JSON', 400);
    const event = jamfWebhookBody.safeParse(body);
    if (!event.success) return c.text(`not a Jamf SCEPChallenge event: ${issues(event.error)}`, 400);
    const { challenge } = await createOneTimeChallenge(deps.db, {
      profile: profile.name,
      ttlSeconds: profile.mdm.challengeTtlSeconds,
      issuedTo: `jamf:${event.data.event.payloadIdentifier}`,
    });
    c.header('Cache-Control', 'no-store');
    return c.text(challenge, 200);
  });

  app.post('/operator/profiles/:profile/challenges', limit, async (c) => {
    const expected = env.OPERATOR_TOKEN;
    // No token configured means no operator API at all, never an open one.
    if (!expected) return c.text('operator API disabled: OPERATOR_TOKEN is not set', 503);
    if (!bearerMatches(c.req.header('authorization'), expected)) {
      c.header('WWW-Authenticate', 'Bearer realm="device-pki-operator"');
      return c.text('missing or wrong operator token', 401);
    }
    const profile = findProfile(deps.config, c.req.param('profile'));
    if (!profile) return c.text(`unknown profile ${c.req.param('profile')}`, 404);
    const mdm = profile.mdm;
    const defaultTtl =
      mdm.type === 'one-time-challenge'
        ? mdm.ttlSeconds
        : mdm.type === 'jamf'
          ? mdm.challengeTtlSeconds
          : undefined;
    if (defaultTtl === undefined)
      return c.text(`profile ${profile.name} uses ${mdm.type}, not one-time challenges`, 409);
    const raw = await c.req.text();
    let json: unknown = {};
    if (raw.trim()) {
      try {
        json = JSON.parse(raw);
      } catch {
        return c.text('body is not JSON', 400);
      }
    }
    const request = operatorBody.safeParse(json);
    if (!request.success) return c.text(`bad request: ${issues(request.error)}`, 400);
    const created = await createOneTimeChallenge(deps.db, {
      profile: profile.name,
      ttlSeconds: request.data.ttlSeconds ?? defaultTtl,
      ...(request.data.issuedTo !== undefined ? { issuedTo: request.data.issuedTo } : {}),
    });
    c.header('Cache-Control', 'no-store');
    return c.json({ challenge: created.challenge, expiresAt: created.expiresAt.toISOString() }, 201);
  });

  return app;
}

async function jsonOf(c: Context): Promise<unknown> {
  try {
    return JSON.parse(await c.req.text());
  } catch {
    return undefined;
  }
}

function issues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
}
