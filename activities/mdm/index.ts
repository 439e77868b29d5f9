import type { Profile } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import type { ServiceCredentialSource } from '../service-credentials/current.js';
import { challengeWebhookVerifier } from './challenge-webhook.js';
import { intuneVerifier } from './intune.js';
import { jamfVerifier } from './jamf.js';
import { oneTimeChallengeVerifier } from './one-time-challenge.js';
import { staticChallengeVerifier } from './static-challenge.js';
import type { MdmVerifier } from './verifier.js';

export interface MdmVerifierDeps {
  db: Database;
  /** Where secrets named in the config are read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Service credentials (Intune client certificates), when this process holds the data token. */
  credentials?: ServiceCredentialSource;
}

/**
 * One adapter per MDM product, chosen by the profile. Build one per profile and keep it: adapters
 * cache access tokens and discovered endpoints. Throws ConfigError when a secret the profile names
 * is not set, so a misconfigured worker stops at start-up instead of escalating every enrollment.
 */
export function mdmVerifierFor(profile: Profile, deps: MdmVerifierDeps): MdmVerifier {
  const mdm = profile.mdm;
  const env = deps.env ?? process.env;
  switch (mdm.type) {
    case 'static-challenge':
      return staticChallengeVerifier(mdm.challenge);
    case 'one-time-challenge':
      return oneTimeChallengeVerifier(deps.db);
    case 'intune':
      return intuneVerifier(mdm, { env, ...(deps.credentials ? { credentials: deps.credentials } : {}) });
    case 'jamf':
      return jamfVerifier(mdm, deps.db, { env });
    case 'challenge-webhook':
      return challengeWebhookVerifier(mdm, { env });
    default: {
      const unknown: never = mdm;
      throw new Error(`profile ${profile.name}: unknown MDM verifier ${JSON.stringify(unknown)}`);
    }
  }
}
