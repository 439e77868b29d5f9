import type { PkiConfig, Profile } from '../../config/profile-types.js';
import type { HsmToken } from '../../hsm/token.js';
import type { CertificateIssuer } from './issuer.js';
import { localHsmIssuer } from './local-hsm.js';

/** One adapter per CA product, chosen by the profile. */
export function certificateIssuerFor(
  token: HsmToken,
  config: PkiConfig,
  profile: Profile,
): CertificateIssuer {
  switch (profile.ca.type) {
    case 'local-hsm':
      return localHsmIssuer(token, config, profile, profile.ca);
    case 'globalsign-atlas':
      throw new Error(`profile ${profile.name}: the GlobalSign Atlas issuer is not available in this build`);
  }
}
