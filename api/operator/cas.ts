/**
 * Issuing-CA rotation (workflows/ca-rotation.ts), thin: each call starts, queries or signals the
 * profile's `ca/<profile>/rotation` workflow.
 *   POST /operator/cas/:profile/rotation         {promoteAt?, retentionSeconds?, settleSeconds?, by?}  201 started, 409 one runs
 *   GET  /operator/cas/:profile/rotation         its state (the workflow's `state` query)
 *   POST /operator/cas/:profile/rotation/pause   {by?, note?}   holds it before its next step
 *   POST /operator/cas/:profile/rotation/resume  {by?, note?}
 */
import { Hono } from 'hono';
import { findProfile } from '../../config/load.js';
import { caRotationState, pauseCaRotation, startCaRotation } from '../../runtime/ca-rotation-client.js';
import { isWorkflowNotFound } from '../../runtime/temporal-errors.js';
import { caRotationWorkflowId } from '../../workflows/definitions.js';
import { actingOperator, type OperatorEnv } from '../http/auth.js';
import { jsonError, parseJsonBody, short } from '../http/errors.js';
import type { ProfileRa } from '../ra.js';
import type { OperatorDeps } from './devices.js';
import { decisionBody, rotationBody } from './schemas.js';

export function caRoutes(deps: OperatorDeps & { ras?: Map<string, ProfileRa> }): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();

  const localProfile = (name: string) => {
    const profile = findProfile(deps.config, name);
    if (!profile) throw jsonError(404, `unknown profile ${short(name)}`);
    if (profile.ca.type !== 'local-hsm')
      throw jsonError(400, `profile ${profile.name} has an upstream CA: its rotation happens at that CA`);
    return profile;
  };
  const notRunning = (err: unknown, profile: string): never => {
    if (isWorkflowNotFound(err)) throw jsonError(404, `no rotation of profile ${profile} is running`);
    throw err;
  };

  app.post('/operator/cas/:profile/rotation', async (c) => {
    const profile = localProfile(c.req.param('profile'));
    const body = parseJsonBody(await c.req.text(), rotationBody);
    const ra = deps.ras?.get(profile.name);
    if (!ra) throw jsonError(503, `profile ${profile.name} has no RA certificate loaded`);
    const started = await startCaRotation(deps.temporal, {
      profile: profile.name,
      ...(body.promoteAt ? { promoteAt: new Date(body.promoteAt).toISOString() } : {}),
      ...(body.retentionSeconds !== undefined ? { retentionSeconds: body.retentionSeconds } : {}),
      ...(body.settleSeconds !== undefined ? { settleSeconds: body.settleSeconds } : {}),
      raCertificate: Buffer.from((await ra.current()).raCertificate).toString('base64'),
      requestedBy: actingOperator(c, body.by),
    });
    if (started.outcome === 'already-running')
      throw jsonError(409, `a rotation of profile ${profile.name} is already running`, {
        workflowId: started.workflowId,
      });
    return c.json({ workflowId: started.workflowId, runId: started.runId }, 201);
  });

  app.get('/operator/cas/:profile/rotation', async (c) => {
    const profile = localProfile(c.req.param('profile'));
    const state = await caRotationState(deps.temporal, profile.name).catch((e) =>
      notRunning(e, profile.name),
    );
    return c.json({ workflowId: caRotationWorkflowId(profile.name), ...state });
  });

  for (const action of ['pause', 'resume'] as const)
    app.post(`/operator/cas/:profile/rotation/${action}`, async (c) => {
      const profile = localProfile(c.req.param('profile'));
      const body = parseJsonBody(await c.req.text(), decisionBody);
      await pauseCaRotation(deps.temporal, profile.name, action, {
        by: actingOperator(c, body.by),
        ...(body.note ? { reason: body.note } : {}),
      }).catch((e) => notRunning(e, profile.name));
      return c.json({ workflowId: caRotationWorkflowId(profile.name), signalled: action }, 202);
    });

  return app;
}
