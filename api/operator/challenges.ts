/**
 * NDES-style one-time challenges for a profile, made by an operator:
 *   POST /operator/profiles/:profile/challenges {ttlSeconds?, issuedTo?, deviceId?} -> 201 {challenge, expiresAt, deviceId}
 * A challenge made for a `deviceId` vouches for that device; without one the device names itself,
 * which the profile must accept (template.requesterChosenCommonName) and which cannot replace a
 * device's valid certificate without approval.
 */
import { Hono } from 'hono';
import { createOneTimeChallenge } from '../../activities/mdm/one-time-challenge.js';
import { findProfile } from '../../config/load.js';
import { actingOperator, type OperatorEnv } from '../http/auth.js';
import { jsonError, parseJsonBody, short } from '../http/errors.js';
import type { OperatorDeps } from './devices.js';
import { challengeBody } from './schemas.js';

export function challengeRoutes(deps: Pick<OperatorDeps, 'config' | 'db'>): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();
  app.post('/operator/profiles/:profile/challenges', async (c) => {
    const profile = findProfile(deps.config, c.req.param('profile'));
    if (!profile) throw jsonError(404, `unknown profile ${short(c.req.param('profile'))}`);
    const mdm = profile.mdm;
    const defaultTtl =
      mdm.type === 'one-time-challenge'
        ? mdm.ttlSeconds
        : mdm.type === 'jamf'
          ? mdm.challengeTtlSeconds
          : undefined;
    if (defaultTtl === undefined)
      throw jsonError(409, `profile ${profile.name} uses ${mdm.type}, not one-time challenges`);
    const body = parseJsonBody(await c.req.text(), challengeBody);
    if (!body.deviceId && mdm.type === 'one-time-challenge' && !profile.template.requesterChosenCommonName)
      throw jsonError(
        400,
        `profile ${profile.name} accepts only verified identities: name the device (deviceId) the challenge is for`,
      );
    const created = await createOneTimeChallenge(deps.db, {
      profile: profile.name,
      ttlSeconds: body.ttlSeconds ?? defaultTtl,
      issuedTo: body.issuedTo ?? actingOperator(c, undefined),
      ...(body.deviceId ? { deviceId: body.deviceId } : {}),
    });
    c.header('Cache-Control', 'no-store');
    return c.json(
      {
        challenge: created.challenge,
        expiresAt: created.expiresAt.toISOString(),
        deviceId: body.deviceId ?? null,
      },
      201,
    );
  });
  return app;
}
