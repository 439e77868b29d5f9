/**
 * Which service credentials this configuration has, and for whom: today the Intune profiles with a
 * `clientCertificate` (Entra ID certificate credentials).
 */
import type { PkiConfig, Profile, ServiceCredentialConfig } from '../../config/profile-types.js';

export interface ServiceCredentialEntry {
  name: string;
  /** The profile that uses it (its notifications carry the operator task). */
  usedBy: Profile;
  /** The profile whose local CA certifies it. */
  issuer: Profile;
  settings: ServiceCredentialConfig;
}

/** The HSM label of a generation's key (data token): recognisable in a key inventory. */
export const serviceKeyLabel = (name: string, generation: number) => `service/${name}/${generation}`;

export function serviceCredentialsOf(config: PkiConfig): ServiceCredentialEntry[] {
  const entries: ServiceCredentialEntry[] = [];
  for (const profile of config.profiles) {
    const settings = profile.mdm.type === 'intune' ? profile.mdm.clientCertificate : undefined;
    if (!settings) continue;
    const issuer = config.profiles.find((p) => p.name === (settings.profile ?? profile.name));
    // The config schema refuses this; kept as a guard for hand-built configs (tests).
    if (!issuer) throw new Error(`service credential ${settings.name}: no profile ${settings.profile}`);
    entries.push({ name: settings.name, usedBy: profile, issuer, settings });
  }
  return entries;
}

export function serviceCredentialNamed(config: PkiConfig, name: string): ServiceCredentialEntry | undefined {
  return serviceCredentialsOf(config).find((e) => e.name === name);
}
