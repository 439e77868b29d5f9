import type { Profile } from '../../config/profile-types.js';
import { staticChallengeVerifier } from './static-challenge.js';
import type { MdmVerifier } from './verifier.js';

/** One adapter per MDM product, chosen by the profile. */
export function mdmVerifierFor(profile: Profile): MdmVerifier {
  switch (profile.mdm.type) {
    case 'static-challenge':
      return staticChallengeVerifier(profile.mdm.challenge);
    default:
      throw new Error(
        `profile ${profile.name}: the ${profile.mdm.type} verifier is not available in this build`,
      );
  }
}
