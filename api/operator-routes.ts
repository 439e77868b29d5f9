/**
 * The operator API (bearer OPERATOR_TOKEN; 503 while it is unset) and the MDM device-removal
 * webhooks. Thin: each call is a Temporal signal, query or visibility list, or a database read.
 *
 *   POST /operator/devices/:profile/:deviceId/revoke   {reason?, by?}  -> 202 {workflowId}
 *   GET  /operator/devices/:profile/:deviceId                          -> lifecycle state, device row, certificates
 *   GET  /operator/enrollments?status=escalated|failed[&profile=][&limit=]
 *   POST /mdm/:profile/device-removed                                  -> 202 {workflowId}
 */
import type { Client } from '@temporalio/client';
import { and, desc, eq, inArray } from 'drizzle-orm';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import { findProfile } from '../config/load.js';
import type { PkiConfig, Profile } from '../config/profile-types.js';
import type { Database } from '../db/client.js';
import { certificates, devices, enrollments } from '../db/schema.js';
import {
  lifecycleExecutionStatus,
  queryLifecycleState,
  type SignalOutcome,
  signalDeviceRemoved,
  signalRevoke,
} from '../runtime/device-lifecycle-client.js';
import {
  DeviceIdKey,
  deviceWorkflowId,
  enrollmentStateQuery,
  OPERATOR_REVOCATION_REASONS,
  PkiProfileKey,
  PkiStatusKey,
} from '../workflows/definitions.js';
import { basicAuthMatches, bearerMatches, hmacSha256HexMatches } from './http-auth.js';

export interface OperatorRoutesDeps {
  config: PkiConfig;
  db: Database;
  temporal: Client;
  /** Where OPERATOR_TOKEN and webhook secrets are read, per request (default process.env). */
  env?: NodeJS.ProcessEnv;
}

const MAX_BODY_BYTES = 64 * 1024;
/** Header of the HMAC-signed device-removed call: hex HMAC-SHA256 of the exact body bytes. */
export const SIGNATURE_HEADER = 'X-PKI-Signature';

const deviceIdSchema = z
  .string()
  .min(1, 'deviceId is empty')
  .max(256, 'deviceId is longer than 256 characters')
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  .regex(/^[^\u0000-\u001f\u007f]+$/, 'deviceId holds control characters');

const revokeBody = z
  .object({
    reason: z.enum(OPERATOR_REVOCATION_REASONS, {
      error: `reason must be one of ${OPERATOR_REVOCATION_REASONS.join(', ')}`,
    }),
    by: z.string().trim().min(1).max(128),
  })
  .partial()
  .strict();

const enrollmentsQuery = z
  .object({
    status: z.enum(['escalated', 'failed'], { error: 'status must be escalated or failed' }),
    profile: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'profile must be lower-case letters, digits and dashes')
      .optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

/** A Jamf Pro webhook: mobile device events carry the device flat, computer events under `computer`. */
const deviceRef = z
  .object({ serialNumber: z.string().max(256).nullish(), udid: z.string().max(256).nullish() })
  .loose();
const jamfEvent = z.object({
  webhook: z
    .object({
      webhookEvent: z
        .string()
        .min(1)
        .max(128)
        .refine((e) => e !== 'SCEPChallenge', 'SCEPChallenge belongs at /jamf/<profile>/scep-challenge'),
    })
    .loose(),
  event: deviceRef.extend({ computer: deviceRef.nullish(), mobileDevice: deviceRef.nullish() }),
});

const signedRemovalBody = z
  .object({ deviceId: deviceIdSchema, source: z.string().trim().min(1).max(128).optional() })
  .strict();

export function operatorRoutes(deps: OperatorRoutesDeps): Hono {
  const env = deps.env ?? process.env;
  const app = new Hono();
  const limit = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: (c) => c.json({ error: `request body exceeds ${MAX_BODY_BYTES} bytes` }, 413),
  });

  /** A Response when the caller is not an operator, else undefined. */
  const refuse = (c: Context): Response | undefined => {
    const expected = env.OPERATOR_TOKEN;
    if (!expected) return c.json({ error: 'operator API disabled: OPERATOR_TOKEN is not set' }, 503);
    if (!bearerMatches(c.req.header('authorization'), expected)) {
      c.header('WWW-Authenticate', 'Bearer realm="device-pki-operator"');
      return c.json({ error: 'missing or wrong operator token' }, 401);
    }
    return undefined;
  };

  /** The profile and device named in the path, or the 4xx Response. */
  const target = (c: Context): { profile: Profile; deviceId: string } | Response => {
    const profile = findProfile(deps.config, c.req.param('profile') ?? '');
    if (!profile) return c.json({ error: `unknown profile ${short(c.req.param('profile'))}` }, 404);
    const deviceId = deviceIdSchema.safeParse(c.req.param('deviceId'));
    if (!deviceId.success) return c.json({ error: issues(deviceId.error) }, 400);
    return { profile, deviceId: deviceId.data };
  };

  app.post('/operator/devices/:profile/:deviceId/revoke', limit, async (c) => {
    const denied = refuse(c);
    if (denied) return denied;
    const device = target(c);
    if (device instanceof Response) return device;
    const json = await optionalJson(c);
    if (json === undefined) return c.json({ error: 'body is not JSON' }, 400);
    const body = revokeBody.safeParse(json);
    if (!body.success) return c.json({ error: `bad request: ${issues(body.error)}` }, 400);
    const sent = await signalRevoke(
      deps.temporal,
      { profile: device.profile.name, deviceId: device.deviceId },
      { reason: body.data.reason ?? 'unspecified', by: body.data.by ?? 'operator-api' },
    );
    return answerSignal(c, sent, 'revoke');
  });

  app.get('/operator/devices/:profile/:deviceId', async (c) => {
    const denied = refuse(c);
    if (denied) return denied;
    const device = target(c);
    if (device instanceof Response) return device;
    const profile = device.profile.name;
    const workflowId = deviceWorkflowId(profile, device.deviceId);
    const [executionStatus, [row], certs] = await Promise.all([
      lifecycleExecutionStatus(deps.temporal, workflowId),
      deps.db
        .select()
        .from(devices)
        .where(and(eq(devices.profile, profile), eq(devices.deviceId, device.deviceId))),
      deps.db
        .select({
          serialHex: certificates.serialHex,
          issuingCa: certificates.issuingCa,
          status: certificates.status,
          notBefore: certificates.notBefore,
          notAfter: certificates.notAfter,
          issuedAt: certificates.issuedAt,
          enrollmentId: certificates.enrollmentId,
          revokedAt: certificates.revokedAt,
          revocationReason: certificates.revocationReason,
        })
        .from(certificates)
        .where(and(eq(certificates.profile, profile), eq(certificates.deviceId, device.deviceId)))
        .orderBy(desc(certificates.notAfter)),
    ]);
    if (executionStatus === undefined && !row && certs.length === 0)
      return c.json({ error: `no device ${short(device.deviceId)} in profile ${profile}` }, 404);
    let lifecycle: Record<string, unknown> | null = null;
    if (executionStatus !== undefined) {
      lifecycle = { executionStatus };
      try {
        lifecycle.state = await queryLifecycleState(deps.temporal, workflowId);
      } catch (err) {
        // No pki worker answering right now: the rest of the answer still stands.
        lifecycle.stateError = (err as Error).message;
      }
    }
    return c.json({
      profile,
      deviceId: device.deviceId,
      workflowId,
      lifecycle,
      device: row ?? null,
      certificates: certs.map(({ revokedAt, revocationReason, ...cert }) => ({
        ...cert,
        revocation: cert.status === 'revoked' ? { revokedAt, reason: revocationReason } : null,
      })),
    });
  });

  app.get('/operator/enrollments', async (c) => {
    const denied = refuse(c);
    if (denied) return denied;
    const parsed = enrollmentsQuery.safeParse(c.req.query());
    if (!parsed.success) return c.json({ error: `bad query: ${issues(parsed.error)}` }, 400);
    const { status, profile, limit } = parsed.data;
    if (profile && !findProfile(deps.config, profile))
      return c.json({ error: `unknown profile ${profile}` }, 400);
    const query = [
      'WorkflowType="enrollment"',
      status === 'escalated' ? 'PkiStatus="Escalated" AND ExecutionStatus="Running"' : 'PkiStatus="Failed"',
      ...(profile ? [`PkiProfile="${profile}"`] : []),
    ].join(' AND ');
    const found = [];
    for await (const execution of deps.temporal.workflow.list({ query, pageSize: Math.min(limit, 100) })) {
      found.push(execution);
      if (found.length >= limit) break;
    }
    const failures =
      status === 'failed' && found.length > 0
        ? await deps.db
            .select({
              id: enrollments.id,
              failInfo: enrollments.failInfo,
              failureReason: enrollments.failureReason,
            })
            .from(enrollments)
            .where(
              inArray(
                enrollments.id,
                found.map((e) => e.workflowId),
              ),
            )
        : [];
    const list = await Promise.all(
      found.map(async (e) => {
        const attrs = e.typedSearchAttributes;
        const item: Record<string, unknown> = {
          workflowId: e.workflowId,
          runId: e.runId,
          profile: attrs.get(PkiProfileKey) ?? null,
          deviceId: attrs.get(DeviceIdKey) ?? null,
          pkiStatus: attrs.get(PkiStatusKey) ?? null,
          executionStatus: e.status.name,
          startTime: e.startTime.toISOString(),
          closeTime: e.closeTime?.toISOString() ?? null,
        };
        if (status === 'failed') {
          const row = failures.find((f) => f.id === e.workflowId);
          item.failure = row ? { failInfo: row.failInfo, reason: row.failureReason } : null;
        } else {
          try {
            const state = await deps.temporal.withDeadline(Date.now() + 3_000, () =>
              deps.temporal.workflow.getHandle(e.workflowId).query(enrollmentStateQuery),
            );
            item.escalation = state.escalation ?? null;
          } catch (err) {
            item.escalation = null;
            item.stateError = (err as Error).message;
          }
        }
        return item;
      }),
    );
    return c.json({ status, profile: profile ?? null, query, enrollments: list });
  });

  app.post('/mdm/:profile/device-removed', limit, async (c) => {
    const profile = findProfile(deps.config, c.req.param('profile'));
    if (!profile) return c.json({ error: `unknown profile ${short(c.req.param('profile'))}` }, 404);
    const raw = new Uint8Array(await c.req.arrayBuffer());
    if (profile.mdm.type === 'jamf') return jamfRemoval(c, profile, raw);
    return signedRemoval(c, profile, raw);
  });

  /** Jamf Pro webhook (Basic auth as for its SCEPChallenge webhook): the device by serial, else UDID. */
  const jamfRemoval = async (c: Context, profile: Profile, raw: Uint8Array) => {
    if (profile.mdm.type !== 'jamf') throw new Error('not a Jamf profile');
    const password = env[profile.mdm.webhookPasswordEnv];
    if (!password)
      return c.json({ error: `${profile.mdm.webhookPasswordEnv} is not set on this server` }, 503);
    if (!basicAuthMatches(c.req.header('authorization'), profile.mdm.webhookUser, password)) {
      c.header('WWW-Authenticate', 'Basic realm="jamf-device-removed", charset="UTF-8"');
      return c.json({ error: 'wrong or missing webhook credentials' }, 401);
    }
    const json = parseJson(raw);
    if (json === undefined) return c.json({ error: 'body is not JSON' }, 400);
    const parsed = jamfEvent.safeParse(json);
    if (!parsed.success) return c.json({ error: `not a Jamf webhook event: ${issues(parsed.error)}` }, 400);
    const { webhook, event } = parsed.data;
    // Our deviceId is the CSR's CN, which Jamf's SCEP payload sets to $SERIALNUMBER (or $UDID).
    const candidates = [
      ...new Set(
        [
          event.serialNumber,
          event.computer?.serialNumber,
          event.mobileDevice?.serialNumber,
          event.udid,
          event.computer?.udid,
          event.mobileDevice?.udid,
        ]
          .map((v) => v?.trim())
          .filter((v): v is string => !!v && deviceIdSchema.safeParse(v).success),
      ),
    ];
    if (candidates.length === 0)
      return c.json({ error: 'event names no device: serialNumber or udid expected' }, 400);
    for (const deviceId of candidates) {
      const sent = await signalDeviceRemoved(
        deps.temporal,
        { profile: profile.name, deviceId },
        { source: `jamf:${webhook.webhookEvent}` },
      );
      if (sent.outcome !== 'not-found') return answerSignal(c, sent, 'deviceRemoved');
    }
    return c.json(
      { error: `no device lifecycle in profile ${profile.name} for ${candidates.join(' or ')}` },
      404,
    );
  };

  /**
   * Any other profile: {deviceId} signed with hex HMAC-SHA256 in X-PKI-Signature, keyed with the
   * profile's challenge-webhook secret (base64-decoded, as the SCEPCHALLENGE webhook uses it), else
   * with OPERATOR_TOKEN (its UTF-8 bytes).
   */
  const signedRemoval = async (c: Context, profile: Profile, raw: Uint8Array) => {
    const secretEnv = profile.mdm.type === 'challenge-webhook' ? profile.mdm.secretEnv : 'OPERATOR_TOKEN';
    const secret = env[secretEnv];
    if (!secret) return c.json({ error: `${secretEnv} is not set on this server` }, 503);
    const key = profile.mdm.type === 'challenge-webhook' ? Buffer.from(secret, 'base64') : secret;
    if (!hmacSha256HexMatches(c.req.header(SIGNATURE_HEADER), raw, key))
      return c.json({ error: `missing or wrong ${SIGNATURE_HEADER} (hex HMAC-SHA256 of the body)` }, 401);
    const json = parseJson(raw);
    if (json === undefined) return c.json({ error: 'body is not JSON' }, 400);
    const body = signedRemovalBody.safeParse(json);
    if (!body.success) return c.json({ error: `bad request: ${issues(body.error)}` }, 400);
    const sent = await signalDeviceRemoved(
      deps.temporal,
      { profile: profile.name, deviceId: body.data.deviceId },
      { source: body.data.source ? `webhook:${body.data.source}` : 'webhook' },
    );
    return answerSignal(c, sent, 'deviceRemoved');
  };

  return app;
}

function answerSignal(c: Context, sent: SignalOutcome, what: 'revoke' | 'deviceRemoved'): Response {
  switch (sent.outcome) {
    case 'signalled':
      return c.json({ workflowId: sent.workflowId, signal: what }, 202);
    case 'not-found':
      return c.json(
        { error: `no device lifecycle workflow ${sent.workflowId}`, workflowId: sent.workflowId },
        404,
      );
    case 'ended':
      // The device was already removed (or its lifecycle stopped): a repeated removal is not an
      // error, so an MDM retrying its webhook stops; a revoke has nothing left to act on.
      return what === 'deviceRemoved'
        ? c.json(
            { workflowId: sent.workflowId, alreadyEnded: true, executionStatus: sent.executionStatus },
            200,
          )
        : c.json(
            {
              error: `device lifecycle ${sent.workflowId} has ended (${sent.executionStatus}); nothing to revoke`,
              workflowId: sent.workflowId,
            },
            409,
          );
  }
}

async function optionalJson(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (!text.trim()) return {};
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function parseJson(raw: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(raw).toString('utf8'));
  } catch {
    return undefined;
  }
}

const short = (s: string | undefined) => (s ?? '').slice(0, 64);

function issues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
}
