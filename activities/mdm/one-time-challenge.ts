/**
 * NDES-style one-time challenges: created by an operator (or Jamf's SCEPChallenge webhook), used by
 * exactly one SCEP transaction. Only the SHA-256 of a challenge is stored, so a database dump
 * yields no usable challenge. A challenge created for a named device vouches for that device; an
 * unbound one vouches for nobody (the request names itself, as with a static challenge).
 */
import { createHash, randomBytes } from 'node:crypto';
import { and, eq, gt, isNull, sql } from 'drizzle-orm';
import type { Database } from '../../db/client.js';
import { oneTimeChallenges } from '../../db/schema.js';
import { requesterChosenIdentity, vouchedIdentity } from '../../pki/admission/identity.js';
import { parseCsr } from '../../pki/x509/csr.js';
import type { MdmVerdict } from '../../workflows/activities.js';
import type { MdmRequest, MdmVerifier } from './verifier.js';

export async function createOneTimeChallenge(
  db: Database,
  opts: { profile: string; ttlSeconds: number; issuedTo?: string; deviceId?: string },
): Promise<{ challenge: string; expiresAt: Date }> {
  // 256 bits; base64url is printable text any SCEP client can carry as challengePassword.
  const challenge = randomBytes(32).toString('base64url');
  const [row] = await db
    .insert(oneTimeChallenges)
    .values({
      challengeSha256: sha256Hex(challenge),
      profile: opts.profile,
      issuedTo: opts.issuedTo ?? null,
      deviceId: opts.deviceId ?? null,
      // The database clock decides expiry, both here and when the challenge is used: API hosts and
      // workers may disagree on the time, the database is one.
      expiresAt: sql`now() + make_interval(secs => ${opts.ttlSeconds})`,
    })
    .returning({ expiresAt: oneTimeChallenges.expiresAt });
  if (!row) throw new Error('one-time challenge insert returned no row');
  return { challenge, expiresAt: row.expiresAt };
}

/**
 * Consumes the challenge the CSR carries. The UPDATE is the whole check (unused, unexpired, this
 * profile), so two transactions racing for one challenge cannot both win. Approved: the device the
 * challenge was made for, or undefined for an unbound challenge.
 */
export async function consumeOneTimeChallenge(
  db: Database,
  request: MdmRequest,
): Promise<
  { verdict: 'approved'; boundDeviceId: string | undefined } | { verdict: 'rejected'; reason: string }
> {
  const parsed = await parseCsr(request.csr);
  if (!parsed.ok) return { verdict: 'rejected', reason: `CSR unreadable: ${parsed.message}` };
  const presented = parsed.csr.challengePassword;
  if (presented === undefined) return { verdict: 'rejected', reason: 'CSR carries no challenge password' };
  const digest = sha256Hex(presented);

  const consumed = await db
    .update(oneTimeChallenges)
    .set({ usedAt: sql`now()`, usedByTransaction: request.transactionId })
    .where(
      and(
        eq(oneTimeChallenges.challengeSha256, digest),
        eq(oneTimeChallenges.profile, request.profile),
        isNull(oneTimeChallenges.usedAt),
        gt(oneTimeChallenges.expiresAt, sql`now()`),
      ),
    )
    .returning({ deviceId: oneTimeChallenges.deviceId });
  if (consumed[0]) return { verdict: 'approved', boundDeviceId: consumed[0].deviceId ?? undefined };

  // A retried activity (worker crashed after the UPDATE committed) finds its own transaction there:
  // still approved, even if the challenge has expired since, because it was valid when used.
  const ownUse = await db
    .select({ deviceId: oneTimeChallenges.deviceId })
    .from(oneTimeChallenges)
    .where(
      and(
        eq(oneTimeChallenges.challengeSha256, digest),
        eq(oneTimeChallenges.profile, request.profile),
        eq(oneTimeChallenges.usedByTransaction, request.transactionId),
      ),
    )
    .limit(1);
  if (ownUse[0]) return { verdict: 'approved', boundDeviceId: ownUse[0].deviceId ?? undefined };

  // One reason for all three cases: the device's admin learns nothing about which challenges exist.
  return { verdict: 'rejected', reason: 'one-time challenge unknown, used or expired' };
}

export function oneTimeChallengeVerifier(db: Database): MdmVerifier {
  return {
    async verify(request): Promise<MdmVerdict> {
      const used = await consumeOneTimeChallenge(db, request);
      if (used.verdict === 'rejected') return used;
      const parsed = await parseCsr(request.csr);
      const identity = used.boundDeviceId
        ? vouchedIdentity('one-time-challenge', used.boundDeviceId, {})
        : requesterChosenIdentity(parsed.ok ? parsed.csr.commonName : undefined);
      if (typeof identity === 'string') return { verdict: 'rejected', reason: identity };
      return { verdict: 'approved', identity };
    },
  };
}

const sha256Hex = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
