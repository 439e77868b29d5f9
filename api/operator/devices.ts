/**
 * A device as operators see and act on it:
 *   GET  /operator/devices?q=&profile=&limit=          devices whose id starts with q (search)
 *   GET  /operator/devices/:profile/:deviceId          lifecycle state, device row, every certificate,
 *                                                      the latest audit events
 *   POST /operator/devices/:profile/:deviceId/revoke   {reason?, by?}  every valid certificate, and a block
 *   POST /operator/devices/:profile/:deviceId/readmit  {by?, note?}    lifts the block
 */
import type { Client } from '@temporalio/client';
import { and, desc, eq, like } from 'drizzle-orm';
import { Hono } from 'hono';
import { findProfile } from '../../config/load.js';
import type { PkiConfig, Profile } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { auditEvents, certificates, devices } from '../../db/schema.js';
import {
  commandDevice,
  lifecycleExecutionStatus,
  queryLifecycleState,
} from '../../runtime/device-lifecycle-client.js';
import { deviceWorkflowId } from '../../workflows/definitions.js';
import { actingOperator, type OperatorEnv } from '../http/auth.js';
import { issues, jsonError, parseJsonBody, short } from '../http/errors.js';
import { decisionBody, deviceIdSchema, deviceSearchQuery, revokeBody } from './schemas.js';

/** The device view's audit trail: the latest events (the full trail: GET /operator/audit). */
const AUDIT_TRAIL_LENGTH = 50;

export interface OperatorDeps {
  config: PkiConfig;
  db: Database;
  temporal: Client;
}

export function deviceRoutes(deps: OperatorDeps): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();

  /** The profile and device named in the path, or a 4xx. */
  const target = (profileName: string, rawDeviceId: string): { profile: Profile; deviceId: string } => {
    const profile = findProfile(deps.config, profileName);
    if (!profile) throw jsonError(404, `unknown profile ${short(profileName)}`);
    const deviceId = deviceIdSchema.safeParse(rawDeviceId);
    if (!deviceId.success) throw jsonError(400, issues(deviceId.error));
    return { profile, deviceId: deviceId.data };
  };
  const certificatesOf = (profile: string, deviceId: string) =>
    deps.db
      .select({
        serialHex: certificates.serialHex,
        issuingCa: certificates.issuingCa,
        status: certificates.status,
        subject: certificates.subject,
        notBefore: certificates.notBefore,
        notAfter: certificates.notAfter,
        issuedAt: certificates.issuedAt,
        enrollmentId: certificates.enrollmentId,
        revokedAt: certificates.revokedAt,
        revocationReason: certificates.revocationReason,
      })
      .from(certificates)
      .where(and(eq(certificates.profile, profile), eq(certificates.deviceId, deviceId)))
      .orderBy(desc(certificates.notAfter));
  const deviceRow = async (profile: string, deviceId: string) =>
    (
      await deps.db
        .select()
        .from(devices)
        .where(and(eq(devices.profile, profile), eq(devices.deviceId, deviceId)))
    )[0];

  app.get('/operator/devices', async (c) => {
    const parsed = deviceSearchQuery.safeParse(c.req.query());
    if (!parsed.success) throw jsonError(400, `bad query: ${issues(parsed.error)}`);
    const { q, profile, limit } = parsed.data;
    if (profile && !findProfile(deps.config, profile)) throw jsonError(400, `unknown profile ${profile}`);
    // A prefix match uses the primary key's index; LIKE's wildcards in q are matched literally.
    const prefix = `${q.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
    const rows = await deps.db
      .select({
        profile: devices.profile,
        deviceId: devices.deviceId,
        status: devices.status,
        certificateNotAfter: devices.certificateNotAfter,
        blockedAt: devices.blockedAt,
        updatedAt: devices.updatedAt,
      })
      .from(devices)
      .where(and(like(devices.deviceId, prefix), profile ? eq(devices.profile, profile) : undefined))
      .orderBy(devices.deviceId, devices.profile)
      .limit(limit);
    return c.json({ q, profile: profile ?? null, devices: rows });
  });

  app.get('/operator/devices/:profile/:deviceId', async (c) => {
    const { profile, deviceId } = target(c.req.param('profile'), c.req.param('deviceId'));
    const workflowId = deviceWorkflowId(profile.name, deviceId);
    const [executionStatus, row, certs, audit] = await Promise.all([
      lifecycleExecutionStatus(deps.temporal, workflowId),
      deviceRow(profile.name, deviceId),
      certificatesOf(profile.name, deviceId),
      deps.db
        .select({
          occurredAt: auditEvents.occurredAt,
          actor: auditEvents.actor,
          action: auditEvents.action,
          subject: auditEvents.subject,
          details: auditEvents.details,
        })
        .from(auditEvents)
        .where(and(eq(auditEvents.profile, profile.name), eq(auditEvents.deviceId, deviceId)))
        .orderBy(desc(auditEvents.id))
        .limit(AUDIT_TRAIL_LENGTH),
    ]);
    if (executionStatus === undefined && !row && certs.length === 0 && audit.length === 0)
      throw jsonError(404, `no device ${short(deviceId)} in profile ${profile.name}`);
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
      profile: profile.name,
      deviceId,
      workflowId,
      lifecycle,
      device: row ?? null,
      blocked: row?.blockedAt ? { at: row.blockedAt.toISOString(), reason: row.blockedReason } : null,
      certificates: certs.map(({ revokedAt, revocationReason, ...cert }) => ({
        ...cert,
        revocation: cert.status === 'revoked' ? { revokedAt, reason: revocationReason } : null,
      })),
      audit,
    });
  });

  app.post('/operator/devices/:profile/:deviceId/revoke', async (c) => {
    const { profile, deviceId } = target(c.req.param('profile'), c.req.param('deviceId'));
    const body = parseJsonBody(await c.req.text(), revokeBody);
    await knownDevice(profile.name, deviceId);
    const sent = await commandDevice(deps.temporal, profile, deviceId, {
      signal: 'revoke',
      payload: { reason: body.reason ?? 'unspecified', by: actingOperator(c, body.by) },
    });
    return c.json({ workflowId: sent.workflowId, signal: 'revoke' }, 202);
  });

  app.post('/operator/devices/:profile/:deviceId/readmit', async (c) => {
    const { profile, deviceId } = target(c.req.param('profile'), c.req.param('deviceId'));
    const body = parseJsonBody(await c.req.text(), decisionBody);
    await knownDevice(profile.name, deviceId);
    const sent = await commandDevice(deps.temporal, profile, deviceId, {
      signal: 'readmit',
      payload: { by: actingOperator(c, body.by), ...(body.note ? { note: body.note } : {}) },
    });
    return c.json({ workflowId: sent.workflowId, signal: 'readmit' }, 202);
  });

  /** A command for a device nobody ever heard of would start a lifecycle for a typo: 404 instead. */
  async function knownDevice(profile: string, deviceId: string): Promise<void> {
    const [row, certs, status] = await Promise.all([
      deviceRow(profile, deviceId),
      deps.db
        .select({ serialHex: certificates.serialHex })
        .from(certificates)
        .where(and(eq(certificates.profile, profile), eq(certificates.deviceId, deviceId)))
        .limit(1),
      lifecycleExecutionStatus(deps.temporal, deviceWorkflowId(profile, deviceId)),
    ]);
    if (!row && certs.length === 0 && status === undefined)
      throw jsonError(404, `no device ${short(deviceId)} in profile ${profile}`, {
        workflowId: deviceWorkflowId(profile, deviceId),
      });
  }

  return app;
}
