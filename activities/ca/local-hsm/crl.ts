/**
 * CRLs of our issuing CAs, signed in the HSM by the issuing CA key (only `pki-hsm` processes hold it)
 * and stored in the database, from where the API serves them.
 */
import { and, asc, eq, gt, sql } from 'drizzle-orm';
import type { Database } from '../../../db/client.js';
import { certificates, crls } from '../../../db/schema.js';
import type { HsmToken } from '../../../hsm/token.js';
import { buildCrl, crlInfo, revocationReasonOf } from '../../../pki/x509/crl.js';

/** How long a CRL is valid: the schedule re-signs it before then (RFC 5280 5.1.2.5 nextUpdate). */
export const CRL_VALIDITY_MS = 24 * 60 * 60 * 1000;

/**
 * Signs and stores the next CRL of an issuing CA. The CA's crls row is locked (SELECT ... FOR
 * UPDATE) from reading the previous number to storing the new CRL, so concurrent publishers take
 * turns and never reuse a number; the revoked entries are read under that lock.
 */
export async function publishCrl(
  deps: { db: Database; token: HsmToken },
  input: { issuingCa: string },
): Promise<{ crlNumber: number; nextUpdate: string }> {
  const { issuingCa } = input;
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

/** Whether the latest CRL already lists every one of these serials. */
export async function latestCrlLists(
  db: Database,
  issuingCa: string,
  serialHexes: string[],
): Promise<boolean> {
  const crl = await latestCrl(db, issuingCa);
  if (!crl) return false;
  const listed = new Set(crlInfo(crl.der).serials);
  return serialHexes.every((s) => listed.has(s));
}
