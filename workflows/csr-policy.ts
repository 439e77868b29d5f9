import type { CsrSummary, EnrollmentPolicy } from './definitions.js';

export type PolicyVerdict = { ok: true } | { ok: false; reason: string };

/**
 * The profile's rules for the key a CSR certifies. Pure, so the workflow can run it itself; what the
 * certificate says comes from the subject template, never from the CSR.
 */
export function checkCsrPolicy(csr: Pick<CsrSummary, 'publicKey'>, policy: EnrollmentPolicy): PolicyVerdict {
  const key = csr.publicKey;
  switch (key.algorithm) {
    case 'rsa':
      if (key.bits < policy.minRsaBits)
        return {
          ok: false,
          reason: `RSA key of ${key.bits} bits is below the profile minimum of ${policy.minRsaBits}`,
        };
      return { ok: true };
    case 'ec':
      if (!policy.allowedCurves.includes(key.curve))
        return {
          ok: false,
          reason: `EC curve ${key.curve} is not allowed (allowed: ${policy.allowedCurves.join(', ')})`,
        };
      return { ok: true };
    case 'other':
      return { ok: false, reason: `public key algorithm ${key.oid} is not supported` };
  }
}
