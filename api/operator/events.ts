/**
 * The event outbox as operators see it (delivery is at least once; dead letters wait for a person):
 *   GET  /operator/events?state=dead|pending|delivered[&profile=][&limit=]
 *   POST /operator/events/:id/redeliver   every undelivered target of the event, from now
 */
import { and, desc, eq, ne, sql } from 'drizzle-orm';
import { Hono } from 'hono';
import { z } from 'zod';
import { recordAudit } from '../../activities/store/audit.js';
import { eventDeliveries, eventOutbox } from '../../db/schema.js';
import { actingOperator, type OperatorEnv } from '../http/auth.js';
import { issues, jsonError, parseJsonBody } from '../http/errors.js';
import type { OperatorDeps } from './devices.js';
import { decisionBody, profileNameSchema } from './schemas.js';

export const listQuery = z
  .object({
    state: z.enum(['dead', 'pending', 'delivered'], { error: 'state must be dead, pending or delivered' }),
    profile: profileNameSchema.optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

export function eventRoutes(deps: Pick<OperatorDeps, 'db'>): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();

  app.get('/operator/events', async (c) => {
    const parsed = listQuery.safeParse(c.req.query());
    if (!parsed.success) throw jsonError(400, `bad query: ${issues(parsed.error)}`);
    const { state, profile, limit } = parsed.data;
    const rows = await deps.db
      .select({
        id: eventOutbox.id,
        type: eventOutbox.type,
        profile: eventOutbox.profile,
        deviceId: eventOutbox.deviceId,
        createdAt: eventOutbox.createdAt,
        target: eventDeliveries.target,
        attempts: eventDeliveries.attempts,
        lastError: eventDeliveries.lastError,
        nextAttemptAt: eventDeliveries.nextAttemptAt,
        deliveredAt: eventDeliveries.deliveredAt,
        deadAt: eventDeliveries.deadAt,
      })
      .from(eventDeliveries)
      .innerJoin(eventOutbox, eq(eventOutbox.id, eventDeliveries.eventId))
      .where(and(eq(eventDeliveries.state, state), ...(profile ? [eq(eventOutbox.profile, profile)] : [])))
      .orderBy(desc(eventOutbox.createdAt))
      .limit(limit);
    return c.json({ state, deliveries: rows });
  });

  app.post('/operator/events/:id{.+}/redeliver', async (c) => {
    const id = decodeURIComponent(c.req.param('id'));
    const body = parseJsonBody(await c.req.text(), decisionBody);
    const by = actingOperator(c, body.by);
    const [event] = await deps.db
      .select({ id: eventOutbox.id, profile: eventOutbox.profile, deviceId: eventOutbox.deviceId })
      .from(eventOutbox)
      .where(eq(eventOutbox.id, id));
    if (!event) throw jsonError(404, `no event ${id.slice(0, 200)} in the outbox`);
    const requeued = await deps.db.transaction(async (tx) => {
      const rows = await tx
        .update(eventDeliveries)
        .set({
          state: 'pending',
          attempts: 0,
          pendingSince: sql`now()`,
          nextAttemptAt: sql`now()`,
          leaseUntil: null,
          deadAt: null,
        })
        .where(and(eq(eventDeliveries.eventId, id), ne(eventDeliveries.state, 'delivered')))
        .returning({ target: eventDeliveries.target });
      if (rows.length > 0)
        await recordAudit(tx, {
          profile: event.profile,
          deviceId: event.deviceId ?? '',
          subject: id,
          actor: by,
          entries: [
            {
              at: new Date().toISOString(),
              action: 'event.redelivery_requested',
              details: { targets: rows.map((r) => r.target) },
            },
          ],
        });
      return rows;
    });
    return c.json({ id, requeued: requeued.map((r) => r.target) }, requeued.length > 0 ? 202 : 200);
  });

  return app;
}
