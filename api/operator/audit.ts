/**
 * The audit trail for SIEMs:
 *   GET /operator/audit?from=<ISO>&to=<ISO>[&profile=][&action=]
 * JSON lines (application/x-ndjson), one audit event per line in (occurredAt, id) order, streamed
 * page by page so a month of events never sits in memory. `from` is inclusive, `to` exclusive, at
 * most 31 days apart: a SIEM pulls day by day (or hour by hour) and resumes from its last `to`. A
 * database failure mid-stream ends the body with `{"error": ..., "resumeAfter": ...}` (no `id`).
 */
import { and, asc, eq, gte, lt, sql } from 'drizzle-orm';
import { Hono } from 'hono';
import { stream } from 'hono/streaming';
import { z } from 'zod';
import { auditEvents } from '../../db/schema.js';
import type { OperatorEnv } from '../http/auth.js';
import { issues, jsonError } from '../http/errors.js';
import { requestLog } from '../http/request-log.js';
import type { OperatorDeps } from './devices.js';
import { profileNameSchema } from './schemas.js';

const MAX_RANGE_DAYS = 31;
const PAGE_SIZE = 1000;

const instant = z.iso.datetime({
  offset: true,
  error: 'must be an ISO 8601 date-time, e.g. 2026-12-01T00:00:00Z',
});

export const exportQuery = z
  .object({
    from: instant,
    to: instant,
    profile: profileNameSchema.optional(),
    action: z
      .string()
      .regex(/^[a-z_.]{1,64}$/, 'action must be an audit action name, e.g. enrollment.succeeded')
      .optional(),
  })
  .strict()
  .refine((q) => Date.parse(q.from) < Date.parse(q.to), { message: 'from must be before to', path: ['to'] })
  .refine((q) => Date.parse(q.to) - Date.parse(q.from) <= MAX_RANGE_DAYS * 86_400_000, {
    message: `the range may span at most ${MAX_RANGE_DAYS} days: export it in parts`,
    path: ['to'],
  });

export function auditRoutes(deps: Pick<OperatorDeps, 'db'>): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();

  app.get('/operator/audit', (c) => {
    const parsed = exportQuery.safeParse(c.req.query());
    if (!parsed.success) throw jsonError(400, `bad query: ${issues(parsed.error)}`);
    const { from, to, profile, action } = parsed.data;
    const filters = and(
      gte(auditEvents.occurredAt, new Date(from)),
      lt(auditEvents.occurredAt, new Date(to)),
      ...(profile ? [eq(auditEvents.profile, profile)] : []),
      ...(action ? [eq(auditEvents.action, action)] : []),
    );
    c.header('content-type', 'application/x-ndjson; charset=utf-8');
    return stream(c, async (out) => {
      // Keyset pagination; the cursor keeps Postgres's microseconds (a JS Date would round them).
      let cursor: { at: string; id: number } | undefined;
      try {
        for (;;) {
          const page = await deps.db
            .select({
              id: auditEvents.id,
              occurredAt: auditEvents.occurredAt,
              cursorAt: sql<string>`${auditEvents.occurredAt}::text`,
              actor: auditEvents.actor,
              action: auditEvents.action,
              profile: auditEvents.profile,
              deviceId: auditEvents.deviceId,
              subject: auditEvents.subject,
              details: auditEvents.details,
            })
            .from(auditEvents)
            .where(
              cursor
                ? and(
                    filters,
                    sql`(${auditEvents.occurredAt}, ${auditEvents.id}) > (${cursor.at}::timestamptz, ${cursor.id})`,
                  )
                : filters,
            )
            .orderBy(asc(auditEvents.occurredAt), asc(auditEvents.id))
            .limit(PAGE_SIZE);
          for (const { cursorAt: _, ...event } of page) await out.writeln(JSON.stringify(event));
          if (page.length < PAGE_SIZE || out.aborted) return;
          const last = page[page.length - 1]!;
          cursor = { at: last.cursorAt, id: last.id };
        }
      } catch (err) {
        // The status line is gone: the last line says so (it has no `id`), with where to resume.
        requestLog(c).error({ err }, 'audit export failed mid-stream');
        await out.writeln(
          JSON.stringify({
            error: 'export interrupted: retry from resumeAfter',
            resumeAfter: cursor ?? null,
          }),
        );
      }
    });
  });

  return app;
}
