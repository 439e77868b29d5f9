import { ApplicationFailure } from '@temporalio/common';
import type { PkiConfig, Profile } from '../../config/profile-types.js';
import type { HsmToken } from '../../hsm/token.js';
import type { CertificateIssuer } from './issuer.js';
import { localHsmIssuer } from './local-hsm.js';

/** The issuer of the `pki-hsm` queue for a profile: our CA, whose keys are in the HSM. */
export function certificateIssuerFor(
  token: HsmToken,
  config: PkiConfig,
  profile: Profile,
): CertificateIssuer {
  switch (profile.ca.type) {
    case 'local-hsm':
      return localHsmIssuer(token, config, profile, profile.ca);
    case 'globalsign-atlas':
      // An upstream CA holds its own keys: it issues through the pki queue (issueUpstream), never here.
      throw ApplicationFailure.nonRetryable(
        `profile ${profile.name} issues through GlobalSign Atlas on the pki queue, not on pki-hsm`,
        'UnknownProfile',
      );
  }
}
