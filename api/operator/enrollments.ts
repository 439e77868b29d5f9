/**
 * The enrollments that need a person:
 *   GET  /operator/enrollments?status=escalated|awaiting-approval|failed[&profile=][&limit=]
 *   POST /operator/enrollments/:workflowId/approve  {by?, note?}   (awaiting approval)
 *   POST /operator/enrollments/:workflowId/retry    {by?, note?}   (escalated)
 *   POST /operator/enrollments/:workflowId/reject   {reason, by?}  (either)
 * The same signals as the Web UI's "Send a Signal"; `workflowId` is `enroll/<profile>/<transactionID>`
 * (URL-encode it, or send it as is: the rest of the path before the action is the id).
 */
import { inArray } from 'drizzle-orm';
import { Hono } from 'hono';
import { z } from 'zod';
import { findProfile } from '../../config/load.js';
import { enrollments } from '../../db/schema.js';
import { decideEnrollment, type EnrollmentDecision } from '../../runtime/enrollment-client.js';
import {
  DeviceIdKey,
  enrollmentStateQuery,
  PkiProfileKey,
  PkiStatusKey,
} from '../../workflows/definitions.js';
import { actingOperator, type OperatorEnv } from '../http/auth.js';
import { issues, jsonError, parseJsonBody } from '../http/errors.js';
import type { OperatorDeps } from './devices.js';
import { decisionBody, profileNameSchema, rejectBody } from './schemas.js';

const STATUS_QUERY = {
  escalated: 'PkiStatus="Escalated" AND ExecutionStatus="Running"',
  'awaiting-approval': 'PkiStatus="AwaitingApproval" AND ExecutionStatus="Running"',
  failed: 'PkiStatus="Failed"',
} as const;

export const listQuery = z
  .object({
    status: z.enum(['escalated', 'awaiting-approval', 'failed'], {
      error: 'status must be escalated, awaiting-approval or failed',
    }),
    profile: profileNameSchema.optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

export function enrollmentRoutes(deps: OperatorDeps): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();

  app.get('/operator/enrollments', async (c) => {
    const parsed = listQuery.safeParse(c.req.query());
    if (!parsed.success) throw jsonError(400, `bad query: ${issues(parsed.error)}`);
    const { status, profile, limit } = parsed.data;
    if (profile && !findProfile(deps.config, profile)) throw jsonError(400, `unknown profile ${profile}`);
    const query = [
      'WorkflowType="enrollment"',
      STATUS_QUERY[status],
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
          return item;
        }
        try {
          const state = await deps.temporal.withDeadline(Date.now() + 3_000, () =>
            deps.temporal.workflow.getHandle(e.workflowId).query(enrollmentStateQuery),
          );
          item.escalation = state.escalation ?? null;
          item.approval = state.approval ?? null;
          item.vouchedBy = state.vouchedBy ?? null;
        } catch (err) {
          item.stateError = (err as Error).message;
        }
        return item;
      }),
    );
    return c.json({ status, profile: profile ?? null, query, enrollments: list });
  });

  app.post('/operator/enrollments/:workflowId{.+}/:action{approve|retry|reject}', async (c) => {
    const workflowId = decodeURIComponent(c.req.param('workflowId'));
    if (!workflowId.startsWith('enroll/'))
      throw jsonError(400, 'not an enrollment workflow id (enroll/<profile>/<transactionID>)');
    const action = c.req.param('action') as EnrollmentDecision['action'];
    const raw = await c.req.text();
    let decision: EnrollmentDecision;
    if (action === 'reject') {
      const body = parseJsonBody(raw, rejectBody);
      decision = { action, payload: { reason: body.reason, by: actingOperator(c, body.by) } };
    } else {
      const body = parseJsonBody(raw, decisionBody);
      decision = {
        action,
        payload: { by: actingOperator(c, body.by), ...(body.note ? { note: body.note } : {}) },
      };
    }
    const sent = await decideEnrollment(deps.temporal, workflowId, decision);
    switch (sent.outcome) {
      case 'sent':
        return c.json({ workflowId, signal: action }, 202);
      case 'not-found':
        throw jsonError(404, `no enrollment workflow ${workflowId}`);
      case 'ended':
        throw jsonError(409, `enrollment ${workflowId} has ended (${sent.executionStatus})`);
      case 'not-waiting':
        throw jsonError(
          409,
          `enrollment ${workflowId} is ${sent.state.status}: it does not wait for ${action}`,
          {
            status: sent.state.status,
          },
        );
    }
  });

  return app;
}
