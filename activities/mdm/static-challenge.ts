import { createHash, timingSafeEqual } from 'node:crypto';
import { parseCsr } from '../../pki/x509/csr.js';
import type { MdmVerdict } from '../types.js';
import type { MdmVerifier } from './verifier.js';

/** The dev and small-fleet verifier: every device of the profile presents one shared challenge. */
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
      return { verdict: 'approved' };
    },
  };
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();
