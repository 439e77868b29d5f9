import { upstreamRootLabel } from '../activities/ca/globalsign-atlas/trust-chain.js';
import type { PkiConfig } from '../config/profile-types.js';
import { loadProfileChain, nextIssuingCertificate } from '../hsm/provision.js';
import type { HsmToken } from '../hsm/token.js';
import type { KeyTransportDecrypter, Signer } from '../pki/keys.js';

/** What the SCEP endpoint of one profile holds, like an NDES server holds its RA certificates. */
export interface ProfileRa {
  profile: string;
  raCertificate: Uint8Array;
  /** The CA that signs this profile's device certificates (ours in the HSM, or the upstream one). */
  issuingCertificate: Uint8Array;
  /** Our root: it issued the issuing CA, or, for an upstream profile, the RA certificate. */
  rootCertificate: Uint8Array;
  /** The certificates above the RA certificate, up to our root: sent with every CertRep. */
  raChain: Uint8Array[];
  /** GetCACert: the RA certificate first, then every CA certificate a device may need, once each. */
  caBundle: Uint8Array[];
  /** The RA private key, in the HSM: signs CertReps. */
  signer: Signer;
  /** The same key, in the HSM: opens the devices' envelopes. */
  decrypter: KeyTransportDecrypter;
  /**
   * GetNextCACert: the profile's next issuing CA, read from the token on each call so a rollover made
   * by `scripts/ca-rollover.ts` shows without a restart. Absent or undefined: no rollover prepared.
   */
  nextIssuingCertificate?: () => Promise<Uint8Array | undefined>;
}

export async function loadRegistrationAuthorities(
  token: HsmToken,
  config: PkiConfig,
): Promise<Map<string, ProfileRa>> {
  const signer = await token.signer(config.ra.keyLabel);
  const decrypter = await token.decrypter(config.ra.keyLabel);
  const entries = await Promise.all(
    config.profiles.map(async (profile): Promise<[string, ProfileRa]> => {
      const chain = await loadProfileChain(token, config, profile.name);
      const upstreamRoot =
        profile.ca.type === 'local-hsm' ? undefined : await token.certificate(upstreamRootLabel(profile));
      const raChain = profile.ca.type === 'local-hsm' ? [chain.issuing, chain.root] : [chain.root];
      return [
        profile.name,
        {
          profile: profile.name,
          raCertificate: chain.ra,
          issuingCertificate: chain.issuing,
          rootCertificate: chain.root,
          raChain,
          caBundle: unique([chain.ra, ...raChain, chain.issuing, ...(upstreamRoot ? [upstreamRoot] : [])]),
          signer,
          decrypter,
          nextIssuingCertificate: () => nextIssuingCertificate(token, config, profile.name),
        },
      ];
    }),
  );
  return new Map(entries);
}

function unique(certificates: Uint8Array[]): Uint8Array[] {
  const seen = new Set<string>();
  return certificates.filter((der) => {
    const key = Buffer.from(der).toString('base64');
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
