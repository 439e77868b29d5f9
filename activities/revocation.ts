/**
 * Revocation on the `pki-hsm` queue: marking a certificate revoked and publishing its CA's CRL,
 * signed in the HSM by the issuing CA key; for an upstream CA (Atlas), revoking it there instead.
 */
import { ApplicationFailure } from '@temporalio/common';
import { and, asc, eq, gt, ne, sql } from 'drizzle-orm';
import type { LocalCaConfig, PkiConfig, Profile } from '../config/profile-types.js';
import type { Database } from '../db/client.js';
import { auditEvents, certificates, crls, upstreamSubmissions } from '../db/schema.js';
import type { HsmToken } from '../hsm/token.js';
import { buildCrl, crlInfo, REASON_CODES, revocationReasonOf } from '../pki/x509/crl.js';
import { atlasClientFromConfig } from './ca/atlas-client.js';
import type { HsmActivities, RevocationReason } from './types.js';

/** How long a CRL is valid: the schedule re-signs it before then (RFC 5280 5.1.2.5 nextUpdate). */
export const CRL_VALIDITY_MS = 24 * 60 * 60 * 1000;

export interface RevocationDeps {
  db: Database;
  token: HsmToken;
  config: PkiConfig;
}

type RevokeInput = Parameters<HsmActivities['revokeCertificate']>[0];

export function createRevocationActivities(
  deps: RevocationDeps,
): Pick<HsmActivities, 'revokeCertificate' | 'publishCrl'> {
  return {
    revokeCertificate: (input) => revokeCertificate(deps, input),
    publishCrl: (input) => publishCrl(deps, input),
  };
}

/**
 * Marks the certificate revoked. Idempotent: the first reason and time win, the audit event is
 * written only by the call that changed the row. A new CRL is published when the revocation is new,
 * or when a retried call finds the latest CRL does not list the certificate yet.
 */
export async function revokeCertificate(
  deps: RevocationDeps,
  input: RevokeInput,
): Promise<{ revokedAt: string; alreadyRevoked: boolean }> {
  if (!Object.hasOwn(REASON_CODES, input.reason)) {
    throw ApplicationFailure.nonRetryable(`unknown revocation reason "${input.reason}"`, 'InvalidRevocation');
  }
  const upstream = upstreamProfileOf(deps.config, input.issuingCa);
  if (!localCaOf(deps.config, input.issuingCa) && !upstream) {
    // Checked before touching the row: a certificate marked revoked must also get onto a CRL we sign
    // (or be revoked at the upstream CA that issued it).
    throw ApplicationFailure.nonRetryable(
      `"${input.issuingCa}" is not the key of a local-hsm issuing CA in this configuration`,
      'UnknownIssuingCa',
    );
  }
  const requestedAt = new Date(input.revokedAt);
  if (Number.isNaN(requestedAt.getTime())) {
    throw ApplicationFailure.nonRetryable(
      `revokedAt "${input.revokedAt}" is not a time`,
      'InvalidRevocation',
    );
  }
  const serialHex = input.serialHex.toLowerCase();
  const key = and(eq(certificates.issuingCa, input.issuingCa), eq(certificates.serialHex, serialHex));

  const outcome = await deps.db.transaction(async (tx) => {
    const changed = await tx
      .update(certificates)
      .set({ status: 'revoked', revokedAt: requestedAt, revocationReason: input.reason })
      .where(and(key, ne(certificates.status, 'revoked')))
      .returning({ profile: certificates.profile, deviceId: certificates.deviceId });
    const row = changed[0];
    if (row) {
      await tx.insert(auditEvents).values({
        actor: input.actor,
        action: 'certificate.revoked',
        profile: row.profile,
        deviceId: row.deviceId,
        subject: serialHex,
        details: { issuingCa: input.issuingCa, reason: input.reason, revokedAt: requestedAt.toISOString() },
      });
      return { alreadyRevoked: false, revokedAt: requestedAt };
    }
    const [existing] = await tx.select({ revokedAt: certificates.revokedAt }).from(certificates).where(key);
    if (!existing) return undefined;
    return { alreadyRevoked: true, revokedAt: existing.revokedAt ?? requestedAt };
  });
  if (!outcome) {
    throw ApplicationFailure.nonRetryable(
      `no certificate with serial ${serialHex} from CA "${input.issuingCa}"`,
      'UnknownCertificate',
    );
  }
  if (upstream) {
    // Upstream CAs publish their own CRL and OCSP: the revocation must reach them. A retry checks
    // first, so Atlas is asked once.
    await revokeAtAtlas(deps.db, upstream, input.issuingCa, serialHex, input.reason, outcome.revokedAt);
  } else if (!outcome.alreadyRevoked || !(await latestCrlLists(deps.db, input.issuingCa, serialHex))) {
    await publishCrl(deps, { issuingCa: input.issuingCa });
  }
  return { revokedAt: outcome.revokedAt.toISOString(), alreadyRevoked: outcome.alreadyRevoked };
}

/**
 * Signs and stores the next CRL of an issuing CA. The CA's crls row is locked (SELECT ... FOR
 * UPDATE) from reading the previous number to storing the new CRL, so concurrent publishers take
 * turns and never reuse a number; the revoked entries are read under that lock.
 */
export async function publishCrl(
  deps: RevocationDeps,
  input: { issuingCa: string },
): Promise<{ crlNumber: number; nextUpdate: string }> {
  const { issuingCa } = input;
  if (!localCaOf(deps.config, issuingCa)) {
    throw ApplicationFailure.nonRetryable(
      `"${issuingCa}" is not the key of a local-hsm issuing CA in this configuration`,
      'UnknownIssuingCa',
    );
  }
  const [issuerCertificate, signer] = await Promise.all([
    deps.token.certificate(issuingCa),
    deps.token.signer(issuingCa),
  ]);
  if (!issuerCertificate) {
    throw new Error(
      `HSM token "${deps.token.tokenLabel}" holds no certificate for issuing CA "${issuingCa}"`,
    );
  }

  return deps.db.transaction(async (tx) => {
    // The first CRL of a CA: a placeholder row (number 0) to lock, committed only with the real CRL.
    await tx
      .insert(crls)
      .values({
        issuingCa,
        crlNumber: 0,
        thisUpdate: new Date(0),
        nextUpdate: new Date(0),
        der: new Uint8Array(),
      })
      .onConflictDoNothing();
    const [previous] = await tx
      .select({ crlNumber: crls.crlNumber, thisUpdate: crls.thisUpdate })
      .from(crls)
      .where(eq(crls.issuingCa, issuingCa))
      .for('update');
    if (!previous) throw new Error(`crls row of "${issuingCa}" vanished inside its transaction`);

    // Read the clock under the lock: thisUpdate never goes backwards between consecutive CRLs.
    const thisUpdate = new Date(Math.max(Date.now(), previous.thisUpdate.getTime()));
    const nextUpdate = new Date(thisUpdate.getTime() + CRL_VALIDITY_MS);
    const revoked = await tx
      .select({
        serialHex: certificates.serialHex,
        revokedAt: certificates.revokedAt,
        reason: certificates.revocationReason,
      })
      .from(certificates)
      .where(
        and(
          eq(certificates.issuingCa, issuingCa),
          eq(certificates.status, 'revoked'),
          gt(certificates.notAfter, thisUpdate),
        ),
      )
      .orderBy(asc(certificates.revokedAt), asc(certificates.serialHex));

    const crlNumber = previous.crlNumber + 1;
    const der = await buildCrl({
      issuerCertificate,
      signer,
      crlNumber,
      thisUpdate,
      nextUpdate,
      entries: revoked.map((r) => ({
        serialHex: r.serialHex,
        revokedAt: r.revokedAt ?? thisUpdate,
        reason: revocationReasonOf(r.reason),
      })),
    });
    await tx
      .update(crls)
      .set({ crlNumber, thisUpdate, nextUpdate, der })
      .where(eq(crls.issuingCa, issuingCa));
    return { crlNumber, nextUpdate: nextUpdate.toISOString() };
  });
}

/** The latest published CRL of an issuing CA (DER), if one was ever published. */
export async function latestCrl(
  db: Database,
  issuingCa: string,
): Promise<{ der: Uint8Array; crlNumber: number; thisUpdate: Date; nextUpdate: Date } | undefined> {
  const [row] = await db
    .select({
      der: crls.der,
      crlNumber: crls.crlNumber,
      thisUpdate: crls.thisUpdate,
      nextUpdate: crls.nextUpdate,
    })
    .from(crls)
    .where(and(eq(crls.issuingCa, issuingCa), gt(sql`length(${crls.der})`, 0)));
  return row;
}

/** The profile whose upstream CA is named `atlas/<profile>` (as the Atlas issuer records it). */
function upstreamProfileOf(config: PkiConfig, issuingCa: string): Profile | undefined {
  const name = issuingCa.startsWith('atlas/') ? issuingCa.slice('atlas/'.length) : undefined;
  return config.profiles.find((p) => p.name === name && p.ca.type === 'globalsign-atlas');
}

async function revokeAtAtlas(
  db: Database,
  profile: Profile,
  issuingCa: string,
  serialHex: string,
  reason: RevocationReason,
  at: Date,
): Promise<void> {
  if (profile.ca.type !== 'globalsign-atlas') return;
  // Atlas names the certificate by the serial it returned at submission, kept with the submission.
  const [row] = await db
    .select({ upstreamId: upstreamSubmissions.upstreamId })
    .from(certificates)
    .innerJoin(upstreamSubmissions, eq(upstreamSubmissions.enrollmentId, certificates.enrollmentId))
    .where(and(eq(certificates.issuingCa, issuingCa), eq(certificates.serialHex, serialHex)));
  const serial = row?.upstreamId ?? serialHex.toUpperCase();
  const client = atlasClientFromConfig(profile.ca);
  try {
    const current = await client.get(serial);
    if (current.kind === 'ready' && current.status === 'REVOKED') return;
    await client.revoke(serial, reason, at);
  } finally {
    client.close();
  }
}

/** The local-hsm CA configuration whose key carries this label. */
export function localCaOf(config: PkiConfig, issuingCa: string): LocalCaConfig | undefined {
  for (const profile of config.profiles) {
    if (profile.ca.type === 'local-hsm' && profile.ca.keyLabel === issuingCa) return profile.ca;
  }
  return undefined;
}

async function latestCrlLists(db: Database, issuingCa: string, serialHex: string): Promise<boolean> {
  const crl = await latestCrl(db, issuingCa);
  return crl ? crlInfo(crl.der).serials.includes(serialHex) : false;
}
