/**
 * The CA activities of one task queue (workflows/activities.ts CaActivities), over the adapters of
 * the profiles whose CA runs there: the checks before signing, storing what was signed and recording
 * revocations happen here once; signing, and telling the CA of a revocation, in the adapter.
 */
import { ApplicationFailure } from '@temporalio/common';
import { caTaskQueue as caQueueOf } from '../../config/policies.js';
import type { PkiConfig, Profile } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import type { HsmToken } from '../../hsm/token.js';
import type { CaActivities } from '../../workflows/activities.js';
import { FAILURE } from '../../workflows/definitions.js';
import type { CaAdapter } from './adapter.js';
import { atlasAdapter, atlasIssuingCa } from './globalsign-atlas/issuer.js';
import { checkIssuanceRequest, checkRetriedIssuance, parseIssuanceInput } from './issuance-request.js';
import { issuedFor, storeIssued } from './issued-certificates.js';
import { isGenerationOf, listGenerations } from './local-hsm/generations.js';
import { localHsmAdapter } from './local-hsm/index.js';
import type { RandomSource } from './local-hsm/serials.js';
import { recordRevocations } from './revocation-records.js';

export interface CaActivityDeps {
  config: PkiConfig;
  db: Database;
  /** The task queue these activities serve: only adapters running there are built. */
  queue: string;
  /** The CA token (local-hsm adapters); absent on hosts without CA keys. */
  token?: HsmToken;
  env?: NodeJS.ProcessEnv;
  random?: RandomSource;
}

/** Whether a profile's certificates may be recorded under this issuing CA name (any generation of its CA). */
export function ownsIssuingCa(profile: Profile, issuingCa: string): boolean {
  return profile.ca.type === 'local-hsm'
    ? isGenerationOf(profile.ca.keyLabel, issuingCa)
    : issuingCa === atlasIssuingCa(profile);
}

/** The issuing CAs of a profile that still sign CRLs and OCSP responder certificates. */
async function signingCasOf(db: Database, profile: Profile): Promise<string[]> {
  if (profile.ca.type !== 'local-hsm') return [atlasIssuingCa(profile)];
  const active = (await listGenerations(db, profile.name)).filter((g) => g.state === 'active');
  return active.length > 0 ? active.map((g) => g.keyLabel) : [profile.ca.keyLabel];
}

export function createCaActivities(deps: CaActivityDeps): CaActivities {
  const adapters = new Map<string, CaAdapter>();
  const adapterOf = (profile: Profile): CaAdapter => {
    let adapter = adapters.get(profile.name);
    if (!adapter) {
      adapter = buildAdapter(deps, profile);
      if (adapter.queue !== deps.queue)
        throw ApplicationFailure.nonRetryable(
          `profile ${profile.name} issues on queue ${adapter.queue}, not ${deps.queue}`,
          FAILURE.unknownProfile,
        );
      adapters.set(profile.name, adapter);
    }
    return adapter;
  };
  const profileNamed = (name: string): Profile =>
    deps.config.profiles.find((p) => p.name === name) ??
    unknown(`profile ${name} is not configured on this worker`);
  const adapterOwning = (issuingCa: string): CaAdapter => {
    const profile = deps.config.profiles.find((p) => ownsIssuingCa(p, issuingCa));
    if (!profile)
      throw ApplicationFailure.nonRetryable(
        `"${issuingCa}" is not an issuing CA of this configuration`,
        FAILURE.unknownIssuingCa,
      );
    return adapterOf(profile);
  };

  const revokeCertificates: CaActivities['revokeCertificates'] = async (input) => {
    const adapter = adapterOwning(input.issuingCa);
    const revoked = await recordRevocations(deps.db, deps.config, input);
    await adapter.revoked(input.issuingCa, revoked);
    return revoked.map((r) => ({
      serialHex: r.serialHex,
      revokedAt: r.revokedAt.toISOString(),
      alreadyRevoked: !r.newlyRevoked,
    }));
  };

  return {
    async issueCertificate(raw) {
      const profile = profileNamed(raw.profile);
      const adapter = adapterOf(profile);
      // Whatever the workflow sent is checked before anything is looked up or signed.
      const input = parseIssuanceInput(profile, raw);
      const done = await issuedFor(deps.db, input.enrollmentId);
      if (done) {
        await checkRetriedIssuance(deps.db, input, done);
        return done.issued;
      }
      const request = await checkIssuanceRequest(deps.db, profile, input);
      const { der, issuingCa } = await adapter.issue(request);
      return storeIssued(deps.db, {
        enrollmentId: request.enrollmentId,
        profile: profile.name,
        deviceId: request.deviceId,
        identity: request.identity,
        der,
        issuingCa,
      });
    },
    revokeCertificates,
    async revokeCertificate(input) {
      const [one] = await revokeCertificates({ ...input, serialHexes: [input.serialHex] });
      if (!one) throw new Error(`revocation of ${input.serialHex} returned nothing`);
      return { revokedAt: one.revokedAt, alreadyRevoked: one.alreadyRevoked };
    },
    async certifyOcspResponders() {
      const done: Array<{ issuingCa: string; outcome: string }> = [];
      for (const profile of deps.config.profiles) {
        if (caQueueOf(profile) !== deps.queue) continue;
        const adapter = adapterOf(profile);
        if (!adapter.certifyOcspResponder) continue;
        for (const issuingCa of await signingCasOf(deps.db, profile))
          done.push({ issuingCa, outcome: await adapter.certifyOcspResponder(issuingCa) });
      }
      return done;
    },
    async publishCrl({ issuingCa }) {
      const adapter = adapterOwning(issuingCa);
      if (!adapter.publishCrl)
        throw ApplicationFailure.nonRetryable(
          `the CA of "${issuingCa}" publishes its own CRL`,
          FAILURE.unknownProfile,
        );
      return adapter.publishCrl(issuingCa);
    },
  };
}

function buildAdapter(deps: CaActivityDeps, profile: Profile): CaAdapter {
  const ca = profile.ca;
  switch (ca.type) {
    case 'local-hsm':
      if (!deps.token)
        throw ApplicationFailure.nonRetryable(
          `profile ${profile.name} signs in the HSM, and this worker holds no CA token`,
          FAILURE.unknownProfile,
        );
      return localHsmAdapter(
        { token: deps.token, config: deps.config, db: deps.db, random: deps.random },
        profile,
        ca,
      );
    case 'globalsign-atlas':
      return atlasAdapter(ca, profile, { db: deps.db, env: deps.env });
  }
}

function unknown(message: string): never {
  // A workflow naming a profile or CA this worker does not serve: a deployment mismatch, not a retry case.
  throw ApplicationFailure.nonRetryable(message, FAILURE.unknownProfile);
}
