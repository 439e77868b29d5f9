import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { eq } from 'drizzle-orm';
import { findProfile } from '../config/load.js';
import type { PkiConfig, Profile } from '../config/profile-types.js';
import type { Database } from '../db/client.js';
import { certificates } from '../db/schema.js';
import { loadProfileChain } from '../hsm/provision.js';
import type { HsmToken, Sealer } from '../hsm/token.js';
import type { LifecyclePolicy } from '../workflows/definitions.js';
import { atlasIssuer } from './ca/atlas.js';
import { certificateIssuerFor } from './ca/index.js';
import type { CertificateIssuer } from './ca/issuer.js';
import { handOffToLifecycle } from './lifecycle.js';
import { mdmVerifierFor } from './mdm/index.js';
import type { MdmVerifier } from './mdm/verifier.js';
import { publishEvent } from './notify/index.js';
import { createRevocationActivities } from './revocation.js';
import { createRevocationSyncActivities } from './revocation-sync.js';
import { recordAudit } from './store/audit.js';
import { recordDeviceStatus } from './store/device-status.js';
import { storeIssuedCertificate } from './store/issued-certificate.js';
import { recordEnrollment } from './store/record-enrollment.js';
import { checkRenewalSigner } from './store/renewal-signer.js';
import type {
  EnrollmentActivities,
  HsmActivities,
  LifecycleActivities,
  RevocationSyncActivities,
} from './types.js';

export interface ActivityDeps {
  config: PkiConfig;
  db: Database;
  temporal: Client;
  /** The token: the field-encryption key, and the issuing CA certificates sent to MDMs. */
  token: HsmToken;
  /** The field-encryption key (sealing CSRs at rest). */
  sealer: Sealer;
  env?: NodeJS.ProcessEnv;
}

/** Activities of the `pki` queue: MDMs, upstream CAs, storage, notifications, hand-offs. */
export function createEnrollmentActivities(
  deps: ActivityDeps,
): EnrollmentActivities & LifecycleActivities & RevocationSyncActivities {
  const env = deps.env ?? process.env;
  const profileOf = (name: string) => findProfile(deps.config, name) ?? unknownProfile(name);
  // One issuer per profile: its HTTPS client keeps the mTLS key it read and the login token it holds
  // (heartbeats go to whichever activity is running).
  const upstreamIssuers = new Map<string, CertificateIssuer>();
  const upstreamIssuerFor = (profile: Profile) => {
    if (profile.ca.type !== 'globalsign-atlas')
      throw ApplicationFailure.nonRetryable(`profile ${profile.name} has no upstream CA`, 'UnknownProfile');
    let issuer = upstreamIssuers.get(profile.name);
    if (!issuer) {
      issuer = atlasIssuer(profile.ca, profile, { db: deps.db, env });
      upstreamIssuers.set(profile.name, issuer);
    }
    return issuer;
  };
  const verifiers = new Map<string, MdmVerifier>();
  const verifierFor = (profile: Profile) => {
    let verifier = verifiers.get(profile.name);
    if (!verifier) {
      verifier = mdmVerifierFor(profile, { db: deps.db, env });
      verifiers.set(profile.name, verifier);
    }
    return verifier;
  };
  return {
    async verifyWithMdm({ profile, transactionId, csr }) {
      return verifierFor(profileOf(profile)).verify({
        profile,
        transactionId,
        csr: Buffer.from(csr, 'base64'),
      });
    },
    checkRenewalSigner: (input) => checkRenewalSigner(deps.db, input),
    async issueUpstream(input) {
      return upstreamIssuerFor(profileOf(input.profile)).issue(input);
    },
    storeIssuedCertificate: (input) => storeIssuedCertificate(deps.db, input),
    recordEnrollment: (input) => recordEnrollment(deps.db, deps.sealer, input),
    async notifyMdmSuccess(input) {
      const profile = profileOf(input.profile);
      const verifier = verifierFor(profile);
      if (!verifier.notifySuccess) return;
      const chain = await loadProfileChain(deps.token, deps.config, profile.name);
      const context = await verifier.notifySuccess({
        profile: profile.name,
        transactionId: input.transactionId,
        csr: Buffer.from(input.csr, 'base64'),
        certificate: Buffer.from(input.issued.certificate, 'base64'),
        issuingCaCertificate: chain.issuing,
      });
      if (context)
        await deps.db
          .update(certificates)
          .set({ mdmContext: context })
          .where(eq(certificates.serialHex, input.issued.serialHex));
    },
    async notifyMdmFailure(input) {
      const verifier = verifierFor(profileOf(input.profile));
      await verifier.notifyFailure?.({
        profile: input.profile,
        transactionId: input.transactionId,
        csr: Buffer.from(input.csr, 'base64'),
        reason: input.reason,
      });
    },
    publishEvent: (event) => publishEvent(profileOf(event.profile).notifications, event, env),
    recordAudit: (input) => recordAudit(deps.db, input),
    handOffToLifecycle: (input) =>
      handOffToLifecycle(deps.temporal, { ...input, policy: lifecyclePolicy(profileOf(input.profile)) }),
    recordDeviceStatus: (input) => recordDeviceStatus(deps.db, input),
    // Intune's revocation channel and CRL freshness (scheduled workflows, runtime/schedules.ts).
    ...createRevocationSyncActivities({ config: deps.config, db: deps.db, temporal: deps.temporal, env }),
  };
}

/** Activities of the `pki-hsm` queue: everything that needs a CA private key. */
export function createHsmActivities(deps: {
  config: PkiConfig;
  token: HsmToken;
  db: Database;
}): HsmActivities {
  const issuers = new Map<string, CertificateIssuer>();
  const issuerFor = (profile: Profile) => {
    let issuer = issuers.get(profile.name);
    if (!issuer) {
      issuer = certificateIssuerFor(deps.token, deps.config, profile);
      issuers.set(profile.name, issuer);
    }
    return issuer;
  };
  return {
    async issueCertificate(input) {
      const profile = findProfile(deps.config, input.profile) ?? unknownProfile(input.profile);
      return issuerFor(profile).issue(input);
    },
    ...createRevocationActivities({ db: deps.db, token: deps.token, config: deps.config }),
  };
}

/** The profile's lifecycle timings, handed to the device's workflow. */
function lifecyclePolicy(profile: Profile): LifecyclePolicy {
  return {
    renewalFraction: profile.renewalFraction,
    renewalLeadSeconds: profile.lifecycle.renewalLeadSeconds,
    overdueMarginSeconds: profile.lifecycle.overdueMarginSeconds,
    supersededGraceSeconds: profile.lifecycle.supersededGraceSeconds,
    publishesEvents: profile.notifications.webhooks.length > 0 || profile.notifications.email !== undefined,
  };
}

function unknownProfile(name: string): never {
  // A workflow started for a profile this worker does not know: a deployment mismatch, not a retry case.
  throw ApplicationFailure.nonRetryable(`profile ${name} is not configured on this worker`, 'UnknownProfile');
}
