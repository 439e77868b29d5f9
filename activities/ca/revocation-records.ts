/**
 * Revocation as a fact in the database, the same for every CA: the rows are marked revoked (the first
 * reason and time win), with an audit event and a `certificate.revoked` event in the outbox, in one
 * transaction. The adapter then makes the CA say so (CRL, or the upstream CA).
 */
import { ApplicationFailure } from '@temporalio/common';
import { and, eq, inArray, ne } from 'drizzle-orm';
import { findProfile } from '../../config/load.js';
import type { PkiConfig } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { auditEvents, certificates } from '../../db/schema.js';
import { REASON_CODES } from '../../pki/x509/crl.js';
import { FAILURE, type RevocationReason } from '../../workflows/definitions.js';
import { enqueueEvent } from '../notify/outbox.js';
import type { RevokedCertificate } from './adapter.js';

export interface RevocationRequest {
  issuingCa: string;
  serialHexes: string[];
  reason: RevocationReason;
  revokedAt: string;
  actor: string;
}

export async function recordRevocations(
  db: Database,
  config: PkiConfig,
  input: RevocationRequest,
): Promise<RevokedCertificate[]> {
  if (!Object.hasOwn(REASON_CODES, input.reason))
    throw ApplicationFailure.nonRetryable(
      `unknown revocation reason "${input.reason}"`,
      FAILURE.invalidRevocation,
    );
  const requestedAt = new Date(input.revokedAt);
  if (Number.isNaN(requestedAt.getTime()))
    throw ApplicationFailure.nonRetryable(
      `revokedAt "${input.revokedAt}" is not a time`,
      FAILURE.invalidRevocation,
    );
  const serials = [...new Set(input.serialHexes.map((s) => s.toLowerCase()))];
  if (serials.length === 0) return [];
  const ofCa = and(eq(certificates.issuingCa, input.issuingCa), inArray(certificates.serialHex, serials));

  return db.transaction(async (tx) => {
    const changed = await tx
      .update(certificates)
      .set({ status: 'revoked', revokedAt: requestedAt, revocationReason: input.reason })
      .where(and(ofCa, ne(certificates.status, 'revoked')))
      .returning({
        serialHex: certificates.serialHex,
        profile: certificates.profile,
        deviceId: certificates.deviceId,
      });
    for (const row of changed) {
      await tx.insert(auditEvents).values({
        actor: input.actor,
        action: 'certificate.revoked',
        profile: row.profile,
        deviceId: row.deviceId,
        subject: row.serialHex,
        details: { issuingCa: input.issuingCa, reason: input.reason, revokedAt: requestedAt.toISOString() },
      });
      const profile = findProfile(config, row.profile);
      if (profile)
        await enqueueEvent(tx, profile.notifications, {
          type: 'certificate.revoked',
          id: `certificate/${input.issuingCa}/${row.serialHex}/revoked`,
          at: requestedAt.toISOString(),
          profile: row.profile,
          deviceId: row.deviceId,
          workflowId: `device/${row.profile}/${row.deviceId}`,
          data: {
            serialHex: row.serialHex,
            issuingCa: input.issuingCa,
            reason: input.reason,
            by: input.actor,
          },
        });
    }
    const all = await tx
      .select({
        serialHex: certificates.serialHex,
        revokedAt: certificates.revokedAt,
        reason: certificates.revocationReason,
      })
      .from(certificates)
      .where(ofCa);
    const missing = serials.filter((s) => !all.some((row) => row.serialHex === s));
    if (missing.length > 0)
      throw ApplicationFailure.nonRetryable(
        `no certificate with serial ${missing.join(', ')} from CA "${input.issuingCa}"`,
        FAILURE.unknownCertificate,
      );
    return all.map((row) => ({
      serialHex: row.serialHex,
      revokedAt: row.revokedAt ?? requestedAt,
      reason: (row.reason ?? input.reason) as RevocationReason,
      newlyRevoked: changed.some((c) => c.serialHex === row.serialHex),
    }));
  });
}
