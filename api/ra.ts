import type { PkiConfig } from '../config/profile-types.js';
import { loadProfileChain } from '../hsm/provision.js';
import type { HsmToken } from '../hsm/token.js';
import type { KeyTransportDecrypter, Signer } from '../pki/keys.js';

/** What the SCEP endpoint of one profile holds, like an NDES server holds its RA certificates. */
export interface ProfileRa {
  profile: string;
  raCertificate: Uint8Array;
  issuingCertificate: Uint8Array;
  rootCertificate: Uint8Array;
  /** The RA private key, in the HSM: signs CertReps. */
  signer: Signer;
  /** The same key, in the HSM: opens the devices' envelopes. */
  decrypter: KeyTransportDecrypter;
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
      return [
        profile.name,
        {
          profile: profile.name,
          raCertificate: chain.ra,
          issuingCertificate: chain.issuing,
          rootCertificate: chain.root,
          signer,
          decrypter,
        },
      ];
    }),
  );
  return new Map(entries);
}
