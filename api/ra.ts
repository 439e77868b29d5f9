import { upstreamRootLabel } from '../activities/ca/globalsign-atlas/trust-chain.js';
import {
  type CaGeneration,
  type GenerationReader,
  issuingGeneration,
  nextGeneration,
} from '../activities/ca/local-hsm/generations.js';
import type { PkiConfig } from '../config/profile-types.js';
import { loadProfileChain } from '../hsm/provision.js';
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
   * GetNextCACert: the profile's next issuing CA (a rotation announced it), read from ca_generations
   * so a rotation shows without a restart. Absent or undefined: no rotation under way.
   */
  nextIssuingCertificate?: () => Promise<Uint8Array | undefined>;
  /**
   * What SCEP serves now: after a promotion, the new CA's chain and the RA certificate it issued.
   * The fields above are the configured CA's (generation 1), kept for callers that need no rotation.
   */
  current: () => Promise<RaView>;
  /** The certificate of the generation that signed a certificate (certificates.issuing_ca). */
  issuerOf?: (issuingCa: string) => Promise<Uint8Array | undefined>;
}

/** The chain and RA certificate of the profile's current CA generation. */
export interface RaView {
  raCertificate: Uint8Array;
  issuingCertificate: Uint8Array;
  raChain: Uint8Array[];
  caBundle: Uint8Array[];
  /** Every RA certificate a device may have encrypted its request to (one key, one per generation). */
  raCertificates: Uint8Array[];
}

export async function loadRegistrationAuthorities(
  token: HsmToken,
  config: PkiConfig,
  generations?: GenerationReader,
): Promise<Map<string, ProfileRa>> {
  const signer = await token.signer(config.ra.keyLabel);
  const decrypter = await token.decrypter(config.ra.keyLabel);
  const entries = await Promise.all(
    config.profiles.map(async (profile): Promise<[string, ProfileRa]> => {
      const chain = await loadProfileChain(token, config, profile.name);
      const upstreamRoot =
        profile.ca.type === 'local-hsm' ? undefined : await token.certificate(upstreamRootLabel(profile));
      const raChain = profile.ca.type === 'local-hsm' ? [chain.issuing, chain.root] : [chain.root];
      const configured: RaView = {
        raCertificate: chain.ra,
        issuingCertificate: chain.issuing,
        raChain,
        caBundle: unique([chain.ra, ...raChain, chain.issuing, ...(upstreamRoot ? [upstreamRoot] : [])]),
        raCertificates: [chain.ra],
      };
      const rotates = profile.ca.type === 'local-hsm' && generations !== undefined;
      const views = new WeakMap<CaGeneration[], RaView>();
      return [
        profile.name,
        {
          profile: profile.name,
          ...configured,
          rootCertificate: chain.root,
          signer,
          decrypter,
          current: rotates
            ? async () => {
                // Built once per read of the generations (the reader caches it for a second):
                // not again for every SCEP message of that second.
                const rows = await generations(profile.name);
                let view = views.get(rows);
                if (!view) {
                  view = viewOf(rows, configured, chain.root);
                  views.set(rows, view);
                }
                return view;
              }
            : async () => configured,
          ...(rotates
            ? {
                nextIssuingCertificate: async () =>
                  nextGeneration(await generations(profile.name))?.certificate,
                issuerOf: async (issuingCa: string) =>
                  (await generations(profile.name)).find((r) => r.keyLabel === issuingCa)?.certificate,
              }
            : {}),
        },
      ];
    }),
  );
  return new Map(entries);
}

/** The view of the newest active generation; the configured one until a rotation promoted another. */
function viewOf(rows: CaGeneration[], configured: RaView, root: Uint8Array): RaView {
  const current = issuingGeneration(rows);
  const raCertificates = unique([
    configured.raCertificate,
    ...rows.flatMap((r) => (r.raCertificate && r.state !== 'destroyed' ? [r.raCertificate] : [])),
  ]);
  if (!current?.raCertificate) return { ...configured, raCertificates };
  const raChain = [current.certificate, root];
  // An older generation still active has valid certificates out there: relying parties that take
  // their chain from GetCACert must still be able to verify them.
  const older = rows.filter((r) => r.state === 'active' && r !== current).map((r) => r.certificate);
  return {
    raCertificate: current.raCertificate,
    issuingCertificate: current.certificate,
    raChain,
    caBundle: unique([current.raCertificate, ...raChain, ...older]),
    raCertificates,
  };
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
