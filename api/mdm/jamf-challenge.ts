/**
 * Jamf Pro's SCEPChallenge webhook: Jamf asks for a challenge to put in the SCEP payload it sends a
 * device (Basic credentials of the profile's webhook). The answer is the challenge as plain text; it
 * is single-use, and the Jamf verifier then takes the device's identity from Jamf's inventory.
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { createOneTimeChallenge } from '../../activities/mdm/one-time-challenge.js';
import { findProfile } from '../../config/load.js';
import type { PkiConfig } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { basicAuthMatches } from '../http/auth.js';
import { jsonError, parseJsonBody } from '../http/errors.js';

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

export function jamfChallengeRoutes(deps: {
  config: PkiConfig;
  db: Database;
  env?: NodeJS.ProcessEnv;
}): Hono {
  const env = deps.env ?? process.env;
  const app = new Hono();
  app.post('/jamf/:profile/scep-challenge', async (c) => {
    const profile = findProfile(deps.config, c.req.param('profile'));
    if (profile?.mdm.type !== 'jamf') throw jsonError(404, 'no Jamf profile of that name');
    const password = env[profile.mdm.webhookPasswordEnv];
    if (!password) throw jsonError(503, `${profile.mdm.webhookPasswordEnv} is not set on this server`);
    if (!basicAuthMatches(c.req.header('authorization'), profile.mdm.webhookUser, password))
      throw jsonError(
        401,
        'wrong or missing webhook credentials',
        {},
        {
          'WWW-Authenticate': 'Basic realm="jamf-scep-challenge", charset="UTF-8"',
        },
      );
    const event = parseJsonBody(await c.req.text(), jamfWebhookBody);
    const { challenge } = await createOneTimeChallenge(deps.db, {
      profile: profile.name,
      ttlSeconds: profile.mdm.challengeTtlSeconds,
      issuedTo: `jamf:${event.event.payloadIdentifier}`,
    });
    c.header('Cache-Control', 'no-store');
    return c.text(challenge, 200);
  });
  return app;
}
