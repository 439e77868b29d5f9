/**
 * The activities of each task queue, built once per worker process from what that process holds:
 * `pki` (MDM verifiers, admission, storage, hand-offs, upstream CAs; no CA key), `pki-hsm` (our CAs,
 * whose keys are in the HSM).
 */
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { eq } from 'drizzle-orm';
import { findProfile } from '../config/load.js';
import { lifecyclePolicy } from '../config/policies.js';
import type { PkiConfig, Profile } from '../config/profile-types.js';
import type { Database } from '../db/client.js';
import { certificates } from '../db/schema.js';
import type { HsmToken, Sealer } from '../hsm/token.js';
import { mdmRequests } from '../runtime/metrics/process.js';
import type {
  CaActivities,
  CaRotationActivities,
  CaRotationHsmActivities,
  EnrollmentActivities,
  LifecycleActivities,
  PkiEvent,
  ReportActivities,
  RevocationActivities,
  RevocationSyncActivities,
  ServiceCredentialActivities,
  ServiceCredentialCaActivities,
} from '../workflows/activities.js';
import { FAILURE, HSM_TASK_QUEUE, TASK_QUEUE } from '../workflows/definitions.js';
import { createCaActivities } from './ca/index.js';
import { createRotationActivities, createRotationHsmActivities } from './ca/local-hsm/rotation.js';
import type { RandomSource } from './ca/local-hsm/serials.js';
import { handOffToLifecycle, notifyLifecycleOfRevocation } from './lifecycle.js';
import { mdmVerifierFor } from './mdm/index.js';
import type { MdmVerifier } from './mdm/verifier.js';
import { enqueueEvent } from './notify/outbox.js';
import { createReportActivities } from './reports/daily-report.js';
import { createRevocationSyncActivities } from './revocation-sync.js';
import { ServiceCredentialSource } from './service-credentials/current.js';
import { createServiceCredentialCaActivities } from './service-credentials/issuer.js';
import { createServiceCredentialActivities } from './service-credentials/rotation.js';
import { admitEnrollment, recordApproval } from './store/admission.js';
import { recordAudit, recordEvent } from './store/audit.js';
import { listValidCertificates, recordDeviceStatus } from './store/device-status.js';
import { recordEnrollment } from './store/record-enrollment.js';
import { checkRenewalSigner } from './store/renewal-signer.js';

export interface PkiActivityDeps {
  config: PkiConfig;
  db: Database;
  temporal: Client;
  /** The field-encryption key (sealing CSRs at rest). */
  sealer: Sealer;
  /**
   * The data token: service credential keys live there (the `pki` worker calls the identity
   * provider, and opens no other token). Without it, no certificate credential can be used.
   */
  serviceKeys?: HsmToken;
  /**
   * The CA token, only where this worker signs as well (CA_ISSUANCE=local, one host running both
   * queues): issuance for our own CAs then runs here, as the enrollment's local activity.
   */
  caToken?: HsmToken;
  env?: NodeJS.ProcessEnv;
}

/** Runs started before the event outbox called this; it now enqueues like everything else. */
interface CompatibilityActivities {
  publishEvent(event: PkiEvent): Promise<void>;
}

export type PkiQueueActivities = EnrollmentActivities &
  LifecycleActivities &
  RevocationActivities &
  RevocationSyncActivities &
  ReportActivities &
  CaActivities &
  ServiceCredentialActivities &
  CaRotationActivities &
  CompatibilityActivities;

/** Activities of the `pki` queue. */
export function createPkiActivities(deps: PkiActivityDeps): PkiQueueActivities {
  const env = deps.env ?? process.env;
  const profileOf = (name: string) => findProfile(deps.config, name) ?? unknownProfile(name);
  // One source per process: every adapter sees a rotation within its short cache.
  const credentials = deps.serviceKeys ? new ServiceCredentialSource(deps.db, deps.serviceKeys) : undefined;
  const verifiers = new Map<string, MdmVerifier>();
  // One verifier per profile: adapters cache access tokens and discovered endpoints.
  const verifierFor = (profile: Profile) => {
    let verifier = verifiers.get(profile.name);
    if (!verifier) {
      verifier = mdmVerifierFor(profile, { db: deps.db, env, ...(credentials ? { credentials } : {}) });
      verifiers.set(profile.name, verifier);
    }
    return verifier;
  };
  return {
    checkRenewalSigner: (input) => checkRenewalSigner(deps.db, input),
    async verifyWithMdm({ profile, transactionId, csr }) {
      const config = profileOf(profile);
      try {
        const verdict = await verifierFor(config).verify({
          profile,
          transactionId,
          csr: Buffer.from(csr, 'base64'),
        });
        mdmRequests.inc({ verifier: config.mdm.type, result: verdict.verdict });
        return verdict;
      } catch (err) {
        mdmRequests.inc({ verifier: config.mdm.type, result: 'error' });
        throw err;
      }
    },
    admitEnrollment: (input) => admitEnrollment(deps.db, profileOf(input.profile), input),
    recordApproval: (input) => recordApproval(deps.db, input),
    recordEvent: (input) => recordEvent(deps.db, profileOf(input.profile).notifications, input),
    handOffToLifecycle: (input) =>
      handOffToLifecycle(deps.temporal, { ...input, policy: lifecyclePolicy(profileOf(input.profile)) }),
    async notifyMdmSuccess(input) {
      const verifier = verifierFor(profileOf(input.profile));
      if (!verifier.notifySuccess) return;
      const context = await verifier.notifySuccess({
        profile: input.profile,
        transactionId: input.transactionId,
        csr: Buffer.from(input.csr, 'base64'),
        certificate: Buffer.from(input.issued.certificate, 'base64'),
      });
      if (context)
        await deps.db
          .update(certificates)
          .set({ mdmContext: context })
          .where(eq(certificates.serialHex, input.issued.serialHex));
    },
    async notifyMdmFailure(input) {
      await verifierFor(profileOf(input.profile)).notifyFailure?.({
        profile: input.profile,
        transactionId: input.transactionId,
        csr: Buffer.from(input.csr, 'base64'),
        reason: input.reason,
      });
    },
    recordEnrollment: (input) => {
      const profile = profileOf(input.request.profile);
      const verifier = input.request.identityFrom === 'renewal-signer' ? 'renewal-signer' : profile.mdm.type;
      return recordEnrollment(deps.db, deps.sealer, profile.notifications, input, verifier);
    },
    recordDeviceStatus: (input) => recordDeviceStatus(deps.db, profileOf(input.profile).notifications, input),
    listValidCertificates: (input) => listValidCertificates(deps.db, input),
    recordAudit: (input) => recordAudit(deps.db, input),
    notifyLifecycleOfRevocation: (input) => notifyLifecycleOfRevocation(deps.temporal, input),
    publishEvent: (event) => enqueueEvent(deps.db, profileOf(event.profile).notifications, event),
    // Intune's revocation channel and CRL freshness (scheduled workflows, runtime/schedules.ts).
    ...createRevocationSyncActivities({
      config: deps.config,
      db: deps.db,
      temporal: deps.temporal,
      env,
      ...(credentials ? { credentials } : {}),
    }),
    // Service credentials (workflows/service-credential.ts): keys in the data token.
    ...createServiceCredentialActivities({ config: deps.config, db: deps.db, token: deps.serviceKeys }),
    // The daily report (schedule reports/daily, workflows/daily-report.ts).
    ...createReportActivities({ config: deps.config, db: deps.db, env }),
    // Upstream CAs (Atlas) are reached from here; our own CA signs on pki-hsm, or here with its token.
    ...caActivitiesOfPkiQueue(deps, env),
    ...createRotationActivities({ config: deps.config, db: deps.db }),
  };
}

/**
 * The CA activities the `pki` queue serves: upstream CAs; with the CA token in this process, also the
 * issuance of our own CAs (local activities of enrollments started with CA_ISSUANCE=local). Revocation,
 * CRLs and OCSP of our CAs stay on pki-hsm either way.
 */
function caActivitiesOfPkiQueue(deps: PkiActivityDeps, env: NodeJS.ProcessEnv): CaActivities {
  const upstream = createCaActivities({ config: deps.config, db: deps.db, queue: TASK_QUEUE, env });
  if (!deps.caToken) return upstream;
  const own = createCaActivities({
    config: deps.config,
    db: deps.db,
    queue: HSM_TASK_QUEUE,
    token: deps.caToken,
  });
  return {
    ...upstream,
    issueCertificate: (input) =>
      findProfile(deps.config, input.profile)?.ca.type === 'local-hsm'
        ? own.issueCertificate(input)
        : upstream.issueCertificate(input),
  };
}

/** Activities of the `pki-hsm` queue: everything that needs a CA private key. */
export function createHsmActivities(deps: {
  config: PkiConfig;
  token: HsmToken;
  db: Database;
  random?: RandomSource;
}): CaActivities & ServiceCredentialCaActivities & CaRotationHsmActivities {
  return {
    ...createCaActivities({ ...deps, queue: HSM_TASK_QUEUE }),
    ...createServiceCredentialCaActivities(deps),
    ...createRotationHsmActivities(deps),
  };
}

function unknownProfile(name: string): never {
  // A workflow started for a profile this worker does not know: a deployment mismatch, not a retry case.
  throw ApplicationFailure.nonRetryable(
    `profile ${name} is not configured on this worker`,
    FAILURE.unknownProfile,
  );
}
