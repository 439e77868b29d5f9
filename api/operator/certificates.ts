/**
 * One certificate by serial (hex, any case, with or without colons):
 *   GET  /operator/certificates/:serial           where it is, its state and revocation
 *   POST /operator/certificates/:serial/revoke    {reason?, by?, issuingCa?}: revoked whether or not a
 *        device lifecycle holds it; idempotent. 200 when done within 10 s, else 202 (it finishes).
 */
import { and, eq } from 'drizzle-orm';
import { Hono } from 'hono';
import { findProfile } from '../../config/load.js';
import { certificates } from '../../db/schema.js';
import { revokeBySerial } from '../../runtime/revocation-client.js';
import { actingOperator, type OperatorEnv } from '../http/auth.js';
import { jsonError, parseJsonBody, short } from '../http/errors.js';
import type { OperatorDeps } from './devices.js';
import { revokeCertificateBody } from './schemas.js';

export function certificateRoutes(deps: OperatorDeps): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();

  /** The certificate a serial names (one CA, or the one `issuingCa` picks), or a 4xx. */
  const find = async (rawSerial: string, issuingCa: string | undefined) => {
    const serialHex = rawSerial
      .replaceAll(':', '')
      .toLowerCase()
      .replace(/^0+(?=.)/, '');
    if (!/^[0-9a-f]{1,64}$/.test(serialHex)) throw jsonError(400, `serial ${short(rawSerial)} is not hex`);
    const rows = await deps.db
      .select({
        issuingCa: certificates.issuingCa,
        serialHex: certificates.serialHex,
        profile: certificates.profile,
        deviceId: certificates.deviceId,
        status: certificates.status,
        subject: certificates.subject,
        notBefore: certificates.notBefore,
        notAfter: certificates.notAfter,
        enrollmentId: certificates.enrollmentId,
        revokedAt: certificates.revokedAt,
        revocationReason: certificates.revocationReason,
      })
      .from(certificates)
      .where(
        issuingCa
          ? and(eq(certificates.serialHex, serialHex), eq(certificates.issuingCa, issuingCa))
          : eq(certificates.serialHex, serialHex),
      );
    if (rows.length === 0)
      throw jsonError(404, `no certificate with serial ${serialHex} issued by this product`);
    if (rows.length > 1)
      throw jsonError(409, `serial ${serialHex} exists under several CAs: name one as issuingCa`, {
        issuingCas: rows.map((r) => r.issuingCa),
      });
    return rows[0]!;
  };

  app.get('/operator/certificates/:serial', async (c) => {
    const row = await find(c.req.param('serial'), c.req.query('issuingCa'));
    return c.json(row);
  });

  app.post('/operator/certificates/:serial/revoke', async (c) => {
    const body = parseJsonBody(await c.req.text(), revokeCertificateBody);
    const row = await find(c.req.param('serial'), body.issuingCa);
    const profile = findProfile(deps.config, row.profile);
    if (!profile) throw jsonError(409, `the certificate's profile ${row.profile} is no longer configured`);
    const done = await revokeBySerial(deps.temporal, profile, row, {
      reason: body.reason ?? 'unspecified',
      by: actingOperator(c, body.by),
    });
    if (done.outcome === 'pending')
      return c.json({ workflowId: done.workflowId, serialHex: row.serialHex, status: 'revoking' }, 202);
    return c.json({ workflowId: done.workflowId, serialHex: row.serialHex, ...done.result });
  });

  return app;
}
