import { createHash, randomUUID } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createOneTimeChallenge, oneTimeChallengeVerifier } from '../../activities/mdm/one-time-challenge.js';
import { type DatabaseHandle, openDatabase } from '../../db/client.js';
import { oneTimeChallenges } from '../../db/schema.js';
import { makeCsr } from '../fakes/csr.js';

const { databaseUrl } = inject('stack');
let handle: DatabaseHandle;
const profile = `otc-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  handle = await openDatabase({ url: databaseUrl, pgliteDir: '' });
});
afterAll(async () => {
  await handle?.close();
});

const request = (challenge: string | undefined, transactionId = randomUUID(), p = profile) => ({
  profile: p,
  transactionId,
  csr: makeCsr({ subject: [['CN', 'laptop-001']], ...(challenge !== undefined ? { challenge } : {}) }),
});

describe('one-time challenges', () => {
  it('creates a 256-bit base64url challenge and stores only its SHA-256', async () => {
    const { challenge, expiresAt } = await createOneTimeChallenge(handle.db, {
      profile,
      ttlSeconds: 600,
      issuedTo: 'operator:alice',
    });
    expect(challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(expiresAt.getTime()).toBeGreaterThan(Date.now() + 590_000);
    expect(expiresAt.getTime()).toBeLessThan(Date.now() + 610_000);
    const rows = await handle.db
      .select()
      .from(oneTimeChallenges)
      .where(eq(oneTimeChallenges.profile, profile));
    const row = rows.find((r) => r.issuedTo === 'operator:alice');
    expect(row?.challengeSha256).toBe(createHash('sha256').update(challenge).digest('hex'));
    expect(JSON.stringify(rows)).not.toContain(challenge);
  });

  it('approves the first use, rejects a second transaction, approves a retry of the first', async () => {
    const verifier = oneTimeChallengeVerifier(handle.db);
    const { challenge } = await createOneTimeChallenge(handle.db, { profile, ttlSeconds: 600 });
    const first = request(challenge);
    expect(await verifier.verify(first)).toMatchObject({ verdict: 'approved' });
    expect(await verifier.verify(request(challenge))).toEqual({
      verdict: 'rejected',
      reason: 'one-time challenge unknown, used or expired',
    });
    // The same transaction again (a retried activity): still approved.
    expect(await verifier.verify(first)).toMatchObject({ verdict: 'approved' });
    const [row] = await handle.db
      .select()
      .from(oneTimeChallenges)
      .where(eq(oneTimeChallenges.challengeSha256, createHash('sha256').update(challenge).digest('hex')));
    expect(row?.usedByTransaction).toBe(first.transactionId);
    expect(row?.usedAt).toBeInstanceOf(Date);
  });

  it('lets exactly one of many concurrent transactions win', async () => {
    const verifier = oneTimeChallengeVerifier(handle.db);
    const { challenge } = await createOneTimeChallenge(handle.db, { profile, ttlSeconds: 600 });
    const verdicts = await Promise.all(Array.from({ length: 8 }, () => verifier.verify(request(challenge))));
    expect(verdicts.filter((v) => v.verdict === 'approved')).toHaveLength(1);
  });

  it('rejects an expired challenge, an unknown one, one of another profile, and a CSR without one', async () => {
    const verifier = oneTimeChallengeVerifier(handle.db);
    const { challenge } = await createOneTimeChallenge(handle.db, { profile, ttlSeconds: 600 });
    await handle.db
      .update(oneTimeChallenges)
      .set({ expiresAt: sql`now() - interval '1 second'` })
      .where(eq(oneTimeChallenges.challengeSha256, createHash('sha256').update(challenge).digest('hex')));
    const rejected = { verdict: 'rejected', reason: 'one-time challenge unknown, used or expired' };
    expect(await verifier.verify(request(challenge))).toEqual(rejected);
    expect(await verifier.verify(request('never-issued'))).toEqual(rejected);

    const other = await createOneTimeChallenge(handle.db, { profile, ttlSeconds: 600 });
    expect(await verifier.verify(request(other.challenge, randomUUID(), `${profile}-other`))).toEqual(
      rejected,
    );
    expect(await verifier.verify(request(other.challenge))).toMatchObject({ verdict: 'approved' });

    expect(await verifier.verify(request(undefined))).toEqual({
      verdict: 'rejected',
      reason: 'CSR carries no challenge password',
    });
    const garbage = await verifier.verify({ profile, transactionId: 't', csr: new Uint8Array([1, 2, 3]) });
    expect(garbage.verdict).toBe('rejected');
  });
});
