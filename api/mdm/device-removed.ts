/**
 * POST /mdm/:profile/device-removed: the MDM says a device left management; every certificate it
 * holds is revoked and it is blocked until readmitted. Two doors, each with its integration's own
 * credential (never the operator token), each refusing stale and replayed deliveries:
 *
 * - Jamf profiles: Jamf Pro's webhook with Basic credentials (mdm.webhookUser/webhookPasswordEnv).
 *   Only the removal event Jamf documents acts (MobileDeviceUnEnrolled); any other event is
 *   acknowledged and ignored. Its eventTimestamp must be within 5 minutes, and the same event
 *   (webhook id, timestamp, device) acts once.
 * - Other profiles: `{"deviceId": "...", "source"?: "..."}` with X-PKI-Timestamp (unix seconds),
 *   X-PKI-Delivery (unique id) and X-PKI-Signature = hex HMAC-SHA256 over
 *   `<timestamp>.<delivery>.<body bytes>` keyed with the profile's deviceRemovedWebhook.secretEnv.
 *   Refused outside 5 minutes of our clock, and when the delivery id was seen before.
 */

import type { Client } from '@temporalio/client';
import { and, eq } from 'drizzle-orm';
import { type Context, Hono } from 'hono';
import { z } from 'zod';
import { findProfile } from '../../config/load.js';
import type { PkiConfig, Profile } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { certificates, devices, webhookReceipts } from '../../db/schema.js';
import { commandDevice, lifecycleExecutionStatus } from '../../runtime/device-lifecycle-client.js';
import { deviceWorkflowId } from '../../workflows/definitions.js';
import { basicAuthMatches, hmacSha256HexMatches } from '../http/auth.js';
import { issues, jsonError, short } from '../http/errors.js';
import { deviceIdSchema } from '../operator/schemas.js';

export const SIGNATURE_HEADER = 'X-PKI-Signature';
export const TIMESTAMP_HEADER = 'X-PKI-Timestamp';
export const DELIVERY_HEADER = 'X-PKI-Delivery';
/** How far a delivery's timestamp may be from our clock. */
export const REPLAY_WINDOW_SECONDS = 300;
/** Jamf Pro's documented event for a device leaving management. */
export const JAMF_REMOVAL_EVENTS: ReadonlySet<string> = new Set(['MobileDeviceUnEnrolled']);

export interface DeviceRemovedDeps {
  config: PkiConfig;
  db: Database;
  temporal: Client;
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
}

const signedBody = z
  .object({ deviceId: deviceIdSchema, source: z.string().trim().min(1).max(128).optional() })
  .strict();

const deviceRef = z
  .object({ serialNumber: z.string().max(256).nullish(), udid: z.string().max(256).nullish() })
  .loose();
const jamfEvent = z.object({
  webhook: z
    .object({
      id: z.union([z.number(), z.string()]).optional(),
      webhookEvent: z.string().min(1).max(128),
      eventTimestamp: z.number().int().positive(),
    })
    .loose(),
  event: deviceRef.extend({ computer: deviceRef.nullish(), mobileDevice: deviceRef.nullish() }),
});

export function deviceRemovedRoutes(deps: DeviceRemovedDeps): Hono {
  const env = deps.env ?? process.env;
  const now = deps.now ?? (() => new Date());
  const app = new Hono();

  app.post('/mdm/:profile/device-removed', async (c) => {
    const profile = findProfile(deps.config, c.req.param('profile'));
    if (!profile) throw jsonError(404, `unknown profile ${short(c.req.param('profile'))}`);
    const raw = new Uint8Array(await c.req.arrayBuffer());
    return profile.mdm.type === 'jamf' ? jamfRemoval(c, profile, raw) : signedRemoval(c, profile, raw);
  });

  const jamfRemoval = async (c: Context, profile: Profile, raw: Uint8Array) => {
    if (profile.mdm.type !== 'jamf') throw new Error('not a Jamf profile');
    const password = env[profile.mdm.webhookPasswordEnv];
    if (!password) throw jsonError(503, `${profile.mdm.webhookPasswordEnv} is not set on this server`);
    if (!basicAuthMatches(c.req.header('authorization'), profile.mdm.webhookUser, password))
      throw jsonError(
        401,
        'wrong or missing webhook credentials',
        {},
        {
          'WWW-Authenticate': 'Basic realm="jamf-device-removed", charset="UTF-8"',
        },
      );
    const parsed = jamfEvent.safeParse(parseJson(raw));
    if (!parsed.success) throw jsonError(400, `not a Jamf webhook event: ${issues(parsed.error)}`);
    const { webhook, event } = parsed.data;
    if (!JAMF_REMOVAL_EVENTS.has(webhook.webhookEvent))
      return c.json({ ignored: `${webhook.webhookEvent.slice(0, 128)} is not a device removal event` }, 200);
    fresh(webhook.eventTimestamp / 1000);
    const candidates = [
      ...new Set(
        [
          event.serialNumber,
          event.mobileDevice?.serialNumber,
          event.computer?.serialNumber,
          event.udid,
          event.mobileDevice?.udid,
          event.computer?.udid,
        ]
          .map((v) => v?.trim())
          .filter((v): v is string => !!v && deviceIdSchema.safeParse(v).success),
      ),
    ];
    if (candidates.length === 0) throw jsonError(400, 'event names no device: serialNumber or udid expected');
    for (const deviceId of candidates) {
      if (!(await known(profile.name, deviceId))) continue;
      return act(
        c,
        profile,
        deviceId,
        `jamf:${webhook.id ?? '?'}:${webhook.eventTimestamp}:${deviceId}`,
        'jamf:MobileDeviceUnEnrolled',
      );
    }
    throw jsonError(404, `no device in profile ${profile.name} for ${candidates.join(' or ')}`);
  };

  const signedRemoval = async (c: Context, profile: Profile, raw: Uint8Array) => {
    const secretEnv = profile.deviceRemovedWebhook?.secretEnv;
    if (!secretEnv)
      throw jsonError(
        404,
        `profile ${profile.name} takes no signed device-removed webhook (deviceRemovedWebhook is not configured)`,
      );
    const secret = env[secretEnv];
    if (!secret) throw jsonError(503, `${secretEnv} is not set on this server`);
    const timestamp = c.req.header(TIMESTAMP_HEADER) ?? '';
    const delivery = c.req.header(DELIVERY_HEADER) ?? '';
    if (!/^\d{1,12}$/.test(timestamp) || !/^[\x21-\x7e]{1,128}$/.test(delivery))
      throw jsonError(
        401,
        `${TIMESTAMP_HEADER} (unix seconds) and ${DELIVERY_HEADER} (1-128 printable characters) are required`,
      );
    const signed = Buffer.concat([Buffer.from(`${timestamp}.${delivery}.`), raw]);
    if (!hmacSha256HexMatches(c.req.header(SIGNATURE_HEADER), signed, secret))
      throw jsonError(
        401,
        `missing or wrong ${SIGNATURE_HEADER} (hex HMAC-SHA256 of "<timestamp>.<delivery>.<body>")`,
      );
    fresh(Number(timestamp));
    const body = signedBody.safeParse(parseJson(raw));
    if (!body.success) throw jsonError(400, `bad request: ${issues(body.error)}`);
    if (!(await known(profile.name, body.data.deviceId)))
      throw jsonError(404, `no device ${short(body.data.deviceId)} in profile ${profile.name}`);
    return act(
      c,
      profile,
      body.data.deviceId,
      delivery,
      body.data.source ? `webhook:${body.data.source}` : 'webhook',
    );
  };

  /** Refuses a delivery whose timestamp is too far from our clock (a stale capture replayed). */
  const fresh = (unixSeconds: number) => {
    const skew = Math.abs(now().getTime() / 1000 - unixSeconds);
    if (!(skew <= REPLAY_WINDOW_SECONDS))
      throw jsonError(
        401,
        `delivery timestamp is ${Math.round(skew)} s away from our clock (limit ${REPLAY_WINDOW_SECONDS} s)`,
      );
  };

  /** Records the delivery (a replay is refused), then revokes and blocks the device. */
  const act = async (c: Context, profile: Profile, deviceId: string, deliveryId: string, source: string) => {
    const integration = `device-removed:${profile.name}`;
    const first = await deps.db
      .insert(webhookReceipts)
      .values({ integration, deliveryId })
      .onConflictDoNothing()
      .returning({ id: webhookReceipts.deliveryId });
    if (first.length === 0)
      throw jsonError(409, `delivery ${short(deliveryId)} was already received: replay refused`);
    try {
      const sent = await commandDevice(deps.temporal, profile, deviceId, {
        signal: 'deviceRemoved',
        payload: { source },
      });
      return c.json({ workflowId: sent.workflowId, signal: 'deviceRemoved' }, 202);
    } catch (err) {
      // Not acted on: the MDM's retry of this very delivery must not be taken for a replay.
      await deps.db
        .delete(webhookReceipts)
        .where(and(eq(webhookReceipts.integration, integration), eq(webhookReceipts.deliveryId, deliveryId)));
      throw err;
    }
  };

  const known = async (profile: string, deviceId: string): Promise<boolean> => {
    const [row] = await deps.db
      .select({ id: devices.deviceId })
      .from(devices)
      .where(and(eq(devices.profile, profile), eq(devices.deviceId, deviceId)));
    if (row) return true;
    const [cert] = await deps.db
      .select({ id: certificates.serialHex })
      .from(certificates)
      .where(and(eq(certificates.profile, profile), eq(certificates.deviceId, deviceId)))
      .limit(1);
    if (cert) return true;
    return (await lifecycleExecutionStatus(deps.temporal, deviceWorkflowId(profile, deviceId))) !== undefined;
  };

  return app;
}

function parseJson(raw: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(raw).toString('utf8'));
  } catch {
    return undefined;
  }
}
