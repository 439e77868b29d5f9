import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { findProfile } from '../config/load.js';
import type { PkiConfig, Profile } from '../config/profile-types.js';
import type { Database } from '../db/client.js';
import type { HsmToken, Sealer } from '../hsm/token.js';
import { certificateIssuerFor } from './ca/index.js';
import type { CertificateIssuer } from './ca/issuer.js';
import { handOffToLifecycle } from './lifecycle.js';
import { mdmVerifierFor } from './mdm/index.js';
import { recordEnrollment } from './store/record-enrollment.js';
import type { EnrollmentActivities, HsmActivities } from './types.js';

export interface ActivityDeps {
  config: PkiConfig;
  db: Database;
  temporal: Client;
  /** The field-encryption key (sealing CSRs at rest). */
  sealer: Sealer;
}

/** Activities of the `pki` queue: MDM, storage, hand-offs. */
export function createEnrollmentActivities(deps: ActivityDeps): EnrollmentActivities {
  const verifiers = new Map(deps.config.profiles.map((p) => [p.name, mdmVerifierFor(p)]));
  return {
    async verifyWithMdm({ profile, transactionId, csr }) {
      const verifier = verifiers.get(profile) ?? unknownProfile(profile);
      return verifier.verify({ transactionId, csr: Buffer.from(csr, 'base64') });
    },
    recordEnrollment: (input) => recordEnrollment(deps.db, deps.sealer, input),
    handOffToLifecycle: (input) =>
      handOffToLifecycle(deps.temporal, {
        ...input,
        renewalFraction: (findProfile(deps.config, input.profile) ?? unknownProfile(input.profile))
          .renewalFraction,
      }),
  };
}

/** Activities of the `pki-hsm` queue: everything that needs a CA private key. */
export function createHsmActivities(deps: { config: PkiConfig; token: HsmToken }): HsmActivities {
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
  };
}

function unknownProfile(name: string): never {
  // A workflow started for a profile this worker does not know: a deployment mismatch, not a retry case.
  throw ApplicationFailure.nonRetryable(`profile ${name} is not configured on this worker`, 'UnknownProfile');
}
