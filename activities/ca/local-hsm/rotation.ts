/**
 * The steps of an issuing-CA rotation (workflows/ca-rotation.ts) over ca_generations and the CA
 * token. Every state change is a conditional UPDATE (or an INSERT that may conflict) whose audit
 * entry and event are written in the same transaction only when the change happened: a retried
 * activity changes and records nothing twice.
 */
import { X509Certificate } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { and, eq, max, notLike } from 'drizzle-orm';
import type { LocalCaConfig, PkiConfig, Profile } from '../../../config/profile-types.js';
import type { Database, Executor } from '../../../db/client.js';
import {
  type CaGenerationState,
  caGenerations,
  certificates,
  ocspResponders,
  serials,
} from '../../../db/schema.js';
import {
  createIssuingCaGeneration,
  issueRaCertificate,
  RootUnreachableError,
} from '../../../hsm/provision.js';
import type { HsmToken } from '../../../hsm/token.js';
import { TokenSet } from '../../../hsm/token-set.js';
import { certificateInfo, rawSubject } from '../../../pki/x509/certificate.js';
import { encodeName } from '../../../pki/x509/name.js';
import type {
  CaRotationActivities,
  CaRotationHsmActivities,
  PkiEvent,
} from '../../../workflows/activities.js';
import { FAILURE } from '../../../workflows/definitions.js';
import { enqueueEvent } from '../../notify/outbox.js';
import { recordAudit } from '../../store/audit.js';
import { publishCrl } from './crl.js';
import { type CaGeneration, generationKeyLabel, listGenerations, nextGeneration } from './generations.js';
import { certifyOcspResponder } from './ocsp-responder.js';

type LocalProfile = Profile & { ca: LocalCaConfig };

interface Deps {
  config: PkiConfig;
  db: Database;
}

/** `pki-hsm`: the steps that touch the CA token. */
export function createRotationHsmActivities(deps: Deps & { token: HsmToken }): CaRotationHsmActivities {
  const tokens = new TokenSet({ ca: deps.token });
  return {
    async prepareCaGeneration(input) {
      const profile = localProfile(deps.config, input.profile);
      return prepareGeneration({ ...deps, tokens }, profile, {
        workflowId: input.workflowId,
        raCertificate: Buffer.from(input.raCertificate, 'base64'),
        actor: input.requestedBy,
      });
    },
    async deactivateCaGeneration(input) {
      const row = await generationRow(deps.db, input.profile, input.generation);
      // Final: PKCS#11 never turns CKA_SIGN back on. Then the record, so a retry finds the key off.
      await deps.token.deactivateKey(row.keyLabel);
      await transition(deps.db, deps.config, input, row, 'active', 'deactivated', {
        action: 'ca.key_deactivated',
      });
    },
    async destroyCaGeneration(input) {
      const row = await generationRow(deps.db, input.profile, input.generation);
      const objects = await deps.token.destroyKey(row.keyLabel);
      await transition(deps.db, deps.config, input, row, 'deactivated', 'destroyed', {
        action: 'ca.key_destroyed',
        details: { objectsDeleted: objects, tokenLabel: deps.token.tokenLabel },
      });
    },
  };
}

/** `pki`: the steps that are database only. */
export function createRotationActivities(deps: Deps): CaRotationActivities {
  return {
    async recordRotationEvent(input) {
      await deps.db.transaction(async (tx) => {
        await recordAudit(tx, {
          profile: input.profile,
          deviceId: '',
          subject: input.workflowId,
          entries: [{ at: new Date().toISOString(), action: input.action, details: input.details }],
        });
        await enqueueEvent(
          tx,
          localProfile(deps.config, input.profile).notifications,
          rotationEvent(input.type, input.profile, input.workflowId, input.details),
        );
      });
    },
    async promoteCaGeneration(input) {
      const row = await generationRow(deps.db, input.profile, input.generation);
      if (row.state !== 'pre-activation') return { promotedAt: (row.promotedAt ?? new Date()).toISOString() };
      const promotedAt = await transition(deps.db, deps.config, input, row, 'pre-activation', 'active', {
        action: 'ca.promoted',
        event: 'ca.promoted',
      });
      return { promotedAt: promotedAt.toISOString() };
    },
    async lastCertificateExpiry({ issuingCa }) {
      // Reserved serials count too: a signature in flight shows there before its certificate is stored.
      // OCSP responder certificates do not keep an old CA alive (they are renewed while it is active).
      const [[issued], [reserved]] = await Promise.all([
        deps.db
          .select({ at: max(certificates.notAfter) })
          .from(certificates)
          .where(eq(certificates.issuingCa, issuingCa)),
        deps.db
          .select({ at: max(serials.notAfter) })
          .from(serials)
          .where(and(eq(serials.issuingCa, issuingCa), notLike(serials.enrollmentId, 'ocsp-responder/%'))),
      ]);
      const times = [issued?.at, reserved?.at].filter((t): t is Date => t instanceof Date);
      return times.length === 0 ? null : new Date(Math.max(...times.map((t) => t.getTime()))).toISOString();
    },
    async recordRotationAudit(input) {
      await recordAudit(deps.db, {
        profile: input.profile,
        deviceId: '',
        subject: input.workflowId,
        ...(input.actor ? { actor: input.actor } : {}),
        entries: [{ at: new Date().toISOString(), action: input.action, details: input.details }],
      });
    },
  };
}

/**
 * The next generation of a profile's CA, ready to be announced: created here when the root key is in
 * the tokens given, else the one the ceremony prepared. Also records generation 1 (the configured
 * CA) the first time, certifies the RA key under the new CA, and signs its first CRL and OCSP
 * responder certificate, so everything a relying party may fetch exists before promotion.
 */
export async function prepareGeneration(
  deps: Deps & { tokens: TokenSet },
  profile: LocalProfile,
  input: { workflowId: string; raCertificate: Uint8Array; actor: string },
): Promise<{
  next: { generation: number; keyLabel: string };
  previous: { generation: number; keyLabel: string };
  nextNotAfter: string;
}> {
  const caToken = deps.tokens.get('ca');
  let rows = await listGenerations(deps.db, profile.name);
  if (rows.length === 0) {
    const certificate = await caToken.certificate(profile.ca.keyLabel);
    if (!certificate)
      throw new Error(`HSM token "${caToken.tokenLabel}" holds no certificate for "${profile.ca.keyLabel}"`);
    await deps.db
      .insert(caGenerations)
      .values({
        profile: profile.name,
        generation: 1,
        keyLabel: profile.ca.keyLabel,
        state: 'active',
        certificate,
        notAfter: certificateInfo(certificate).notAfter,
      })
      .onConflictDoNothing();
    rows = await listGenerations(deps.db, profile.name);
  }
  const current = rows.filter((r) => r.state === 'active').at(-1);
  if (!current)
    throw ApplicationFailure.nonRetryable(
      `profile ${profile.name} has no active CA generation`,
      FAILURE.unknownProfile,
    );

  await checkRaCertificate(deps, profile, rows, input.raCertificate);
  const raSpki = certificateInfo(input.raCertificate).subjectPublicKeyInfo;

  let next = nextGeneration(rows);
  if (!next) {
    const generation = Math.max(...rows.map((r) => r.generation)) + 1;
    const keyLabel = generationKeyLabel(profile.ca.keyLabel, generation);
    let certificate: Uint8Array;
    try {
      certificate = await createIssuingCaGeneration(deps.tokens, deps.config, profile.name, keyLabel);
    } catch (e) {
      if (e instanceof RootUnreachableError)
        throw ApplicationFailure.nonRetryable(e.message, 'RootUnreachable');
      throw e;
    }
    await deps.db.transaction(async (tx) => {
      const inserted = await tx
        .insert(caGenerations)
        .values({
          profile: profile.name,
          generation,
          keyLabel,
          state: 'pre-activation',
          certificate,
          notAfter: certificateInfo(certificate).notAfter,
        })
        .onConflictDoNothing()
        .returning({ generation: caGenerations.generation });
      if (inserted.length > 0)
        await auditStep(
          tx,
          profile.name,
          input.workflowId,
          'ca.generation_created',
          {
            generation,
            keyLabel,
            tokenLabel: caToken.tokenLabel,
            ...certificateSummary(certificate),
          },
          input.actor,
        );
    });
    next = nextGeneration(await listGenerations(deps.db, profile.name));
    if (!next) throw new Error(`generation ${generation} of ${profile.name} vanished after it was recorded`);
  }

  if (!next.raCertificate || !sameKey(next.raCertificate, raSpki)) {
    const raCertificate = await issueRaCertificate(caToken, deps.config, profile.name, next, raSpki);
    await deps.db
      .update(caGenerations)
      .set({ raCertificate })
      .where(and(eq(caGenerations.profile, profile.name), eq(caGenerations.generation, next.generation)));
  }

  // Its CRL and OCSP responder exist before any certificate names them. The responder key is the
  // profile's (in the RA token, used by the API); the new CA certifies it too.
  await publishCrl({ db: deps.db, token: caToken }, { issuingCa: next.keyLabel });
  const [responder] = await deps.db
    .select({ spki: ocspResponders.spki })
    .from(ocspResponders)
    .where(eq(ocspResponders.issuingCa, profile.ca.keyLabel));
  if (responder) {
    await deps.db
      .insert(ocspResponders)
      .values({ issuingCa: next.keyLabel, spki: responder.spki })
      .onConflictDoNothing();
    await certifyOcspResponder({ db: deps.db, token: caToken }, next.keyLabel);
  }
  return {
    next: { generation: next.generation, keyLabel: next.keyLabel },
    previous: { generation: current.generation, keyLabel: current.keyLabel },
    nextNotAfter: next.notAfter.toISOString(),
  };
}

/**
 * A forged workflow input must not get a key certified as our RA. Accepted: a certificate one of this
 * profile's CA generations signed (the ceremony reads the RA token's, which generation 1 issued),
 * with the RA's subject, and not one the CA signed for an enrollment or a responder (every such
 * serial is reserved in `serials`; RA certificates never are). Only its public key is certified again.
 */
async function checkRaCertificate(
  deps: Deps,
  profile: LocalProfile,
  rows: CaGeneration[],
  der: Uint8Array,
): Promise<void> {
  const refuse = (why: string): never => {
    throw ApplicationFailure.nonRetryable(
      `the RA certificate given for profile ${profile.name} ${why}`,
      FAILURE.refusedIssuance,
    );
  };
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(Buffer.from(der));
  } catch {
    return refuse('is not a certificate');
  }
  const issuer = rows.find((r) =>
    certificate.verify(new X509Certificate(Buffer.from(r.certificate)).publicKey),
  );
  if (!issuer) return refuse('is not issued by a CA of this profile');
  const expected = encodeName([...deps.config.ra.subject, ['OU', profile.name]]);
  if (!Buffer.from(rawSubject(der)).equals(Buffer.from(expected))) return refuse('does not name the RA');
  const [enrolled] = await deps.db
    .select({ serialHex: serials.serialHex })
    .from(serials)
    .where(
      and(eq(serials.issuingCa, issuer.keyLabel), eq(serials.serialHex, certificateInfo(der).serialHex)),
    );
  if (enrolled) refuse('is a certificate the CA issued to an enrollment');
}

async function transition(
  db: Database,
  config: PkiConfig,
  input: { profile: string; workflowId: string; generation: number },
  row: { keyLabel: string },
  from: CaGenerationState,
  to: CaGenerationState,
  record: { action: string; event?: PkiEvent['type']; details?: Record<string, unknown> },
): Promise<Date> {
  const at = new Date();
  const stamp =
    to === 'active' ? { promotedAt: at } : to === 'deactivated' ? { deactivatedAt: at } : { destroyedAt: at };
  await db.transaction(async (tx) => {
    const changed = await tx
      .update(caGenerations)
      .set({ state: to, ...stamp })
      .where(
        and(
          eq(caGenerations.profile, input.profile),
          eq(caGenerations.generation, input.generation),
          eq(caGenerations.state, from),
        ),
      )
      .returning({ generation: caGenerations.generation });
    if (changed.length === 0) return;
    const details = { generation: input.generation, keyLabel: row.keyLabel, from, to, ...record.details };
    await auditStep(tx, input.profile, input.workflowId, record.action, details);
    if (record.event)
      await enqueueEvent(
        tx,
        localProfile(config, input.profile).notifications,
        rotationEvent(record.event, input.profile, input.workflowId, details),
      );
  });
  return at;
}

function rotationEvent(
  type: PkiEvent['type'],
  profile: string,
  workflowId: string,
  data: Record<string, unknown>,
): PkiEvent {
  // One event of each type per rotation: the id is stable across retries.
  return {
    type,
    id: `${workflowId}/${type}`,
    at: new Date().toISOString(),
    profile,
    deviceId: '',
    workflowId,
    data,
  };
}

async function auditStep(
  tx: Executor,
  profile: string,
  workflowId: string,
  action: string,
  details: Record<string, unknown>,
  actor?: string,
): Promise<void> {
  await recordAudit(tx, {
    profile,
    deviceId: '',
    subject: workflowId,
    ...(actor ? { actor } : {}),
    entries: [{ at: new Date().toISOString(), action, details }],
  });
}

async function generationRow(db: Database, profile: string, generation: number) {
  const [row] = await db
    .select()
    .from(caGenerations)
    .where(and(eq(caGenerations.profile, profile), eq(caGenerations.generation, generation)));
  if (!row)
    throw ApplicationFailure.nonRetryable(
      `profile ${profile} has no CA generation ${generation}`,
      FAILURE.unknownProfile,
    );
  return row;
}

function localProfile(config: PkiConfig, name: string): LocalProfile {
  const profile = config.profiles.find((p) => p.name === name);
  if (profile?.ca.type !== 'local-hsm')
    throw ApplicationFailure.nonRetryable(
      `profile ${name} has no local CA on this worker: nothing to rotate`,
      FAILURE.unknownProfile,
    );
  return profile as LocalProfile;
}

function certificateSummary(der: Uint8Array): Record<string, string> {
  const info = certificateInfo(der);
  return {
    subject: info.subject,
    serialHex: info.serialHex,
    notBefore: info.notBefore.toISOString(),
    notAfter: info.notAfter.toISOString(),
  };
}

function sameKey(certificate: Uint8Array, spki: Uint8Array): boolean {
  return Buffer.from(certificateInfo(certificate).subjectPublicKeyInfo).equals(Buffer.from(spki));
}
