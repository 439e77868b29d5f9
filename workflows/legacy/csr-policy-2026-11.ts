/** FROZEN copy (2026-11) of the types the legacy workflows in this folder were written against. */
import type { CsrSummary, EnrollmentPolicy } from './definitions-2026-11.js';

export type PolicyVerdict = { ok: true } | { ok: false; reason: string };

/** The profile's rules for what a CSR may ask for. Pure, so the workflow can run it itself. */
export function checkCsrPolicy(csr: CsrSummary, policy: EnrollmentPolicy): PolicyVerdict {
  if (!csr.commonName) return { ok: false, reason: 'CSR subject has no common name' };
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
