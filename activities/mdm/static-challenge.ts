import { createHash, timingSafeEqual } from 'node:crypto';
import { requesterChosenIdentity } from '../../pki/admission/identity.js';
import { parseCsr } from '../../pki/x509/csr.js';
import type { MdmVerdict } from '../../workflows/activities.js';
import type { MdmVerifier } from './verifier.js';

/**
 * The development verifier: every device of the profile presents one shared challenge. It vouches
 * for nobody: whoever holds the challenge names itself (its CN), so the profile must accept
 * requester-chosen names, and replacing a device's certificate this way needs an operator.
 */
export function staticChallengeVerifier(expected: string): MdmVerifier {
  const expectedDigest = sha256(expected);
  return {
    async verify({ csr }): Promise<MdmVerdict> {
      const parsed = await parseCsr(csr);
      if (!parsed.ok) return { verdict: 'rejected', reason: `CSR unreadable: ${parsed.message}` };
      const presented = parsed.csr.challengePassword;
      if (presented === undefined)
        return { verdict: 'rejected', reason: 'CSR carries no challenge password' };
      // Compare digests: equal length, constant time, whatever the presented length.
      if (!timingSafeEqual(sha256(presented), expectedDigest))
        return { verdict: 'rejected', reason: 'challenge password does not match' };
      const identity = requesterChosenIdentity(parsed.csr.commonName);
      if (typeof identity === 'string') return { verdict: 'rejected', reason: identity };
      return { verdict: 'approved', identity };
    },
  };
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();
