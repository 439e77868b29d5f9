/**
 * The key inventory (activities/keys/):
 *   GET  /operator/keys                              every key of every token, as last listed
 *   POST /operator/keys/compromised {token, label, by?, note?}   an operator marks a key compromised
 * The API holds only the RA and data tokens: it reads what each token's own process recorded
 * (`observedAt` says when), never the CA token itself.
 */
import { Hono } from 'hono';
import { listKeyInventory, markKeyCompromised } from '../../activities/keys/store.js';
import { recordAudit } from '../../activities/store/audit.js';
import { actingOperator, type OperatorEnv } from '../http/auth.js';
import { jsonError, parseJsonBody, short } from '../http/errors.js';
import type { OperatorDeps } from './devices.js';
import { compromisedKeyBody } from './schemas.js';

export function keyRoutes(deps: Pick<OperatorDeps, 'db'>): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();

  app.get('/operator/keys', async (c) => {
    const keys = await listKeyInventory(deps.db);
    // The oldest listing of a key still in a token: nothing current in the answer is older. A destroyed
    // key is never listed again; its last sighting would pin this to the day it was destroyed.
    const observedAt = keys
      .filter((k) => k.state !== 'destroyed')
      .reduce<string | undefined>(
        (oldest, k) => (oldest === undefined || k.observedAt < oldest ? k.observedAt : oldest),
        undefined,
      );
    return c.json({ observedAt: observedAt ?? null, keys });
  });

  app.post('/operator/keys/compromised', async (c) => {
    const body = parseJsonBody(await c.req.text(), compromisedKeyBody);
    const by = actingOperator(c, body.by);
    const at = new Date();
    // The finding and its audit entry stand or fall together.
    const marked = await deps.db.transaction(async (tx) => {
      if (!(await markKeyCompromised(tx, body.token, body.label, at))) return false;
      await recordAudit(tx, {
        profile: '*',
        deviceId: '',
        subject: `key:${body.token}/${body.label}`,
        actor: by,
        entries: [
          {
            at: at.toISOString(),
            action: 'key.marked_compromised',
            details: { token: body.token, label: body.label, ...(body.note ? { note: body.note } : {}) },
          },
        ],
      });
      return true;
    });
    if (!marked)
      throw jsonError(404, `no key "${short(body.label)}" in token "${short(body.token)}" in the inventory`);
    const [key] = await listKeyInventory(deps.db, { token: body.token, label: body.label });
    return c.json(key);
  });

  return app;
}
