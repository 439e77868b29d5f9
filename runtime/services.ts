import { Client, Connection } from '@temporalio/client';
import { provisionAtlasChain } from '../activities/ca/globalsign-atlas/trust-chain.js';
import type { PkiConfig } from '../config/profile-types.js';
import type { RuntimeSettings } from '../config/runtime.js';
import { type DatabaseHandle, migrateDatabase, openDatabase } from '../db/client.js';
import { ensurePkiHierarchy, issuingCertificateLabel } from '../hsm/provision.js';
import { ensureSoftHsmToken } from '../hsm/softhsm.js';
import { HsmToken } from '../hsm/token.js';

/**
 * Opens the HSM token. With PKCS11_LIBRARY/SOFTHSM2_LIB set the token is someone else's (production:
 * a real HSM or a provisioned SoftHSM volume); otherwise a project-local SoftHSM token under .data/.
 */
export async function openToken(settings: RuntimeSettings): Promise<HsmToken> {
  const { hsm } = settings;
  if (hsm.library) return HsmToken.open({ library: hsm.library, tokenLabel: hsm.tokenLabel, pin: hsm.pin });
  const config = await ensureSoftHsmToken({
    dir: hsm.softhsmDir,
    label: hsm.tokenLabel,
    pin: hsm.pin,
    soPin: hsm.soPin,
  });
  return HsmToken.open(config);
}

/** Dev and test: a token holding the whole hierarchy the config names (created on first run). */
export async function openProvisionedToken(settings: RuntimeSettings, config: PkiConfig): Promise<HsmToken> {
  const token = await openToken(settings);
  await ensurePkiHierarchy(token, config);
  await ensureUpstreamChains(token, config);
  return token;
}

/**
 * Upstream CA profiles: their trust chain (fetched from the CA) is kept in the token, so GetCACert
 * works without calling the CA. Unreachable CA + a chain already stored: carry on with a warning.
 */
export async function ensureUpstreamChains(token: HsmToken, config: PkiConfig): Promise<void> {
  for (const profile of config.profiles) {
    if (profile.ca.type !== 'globalsign-atlas') continue;
    try {
      await provisionAtlasChain(token, profile, profile.ca);
    } catch (err) {
      if (!(await token.certificate(issuingCertificateLabel(profile)))) throw err;
      console.warn(
        `[pki] profile ${profile.name}: keeping the stored Atlas trust chain (${(err as Error).message})`,
      );
    }
  }
}

export async function connectTemporal(settings: RuntimeSettings): Promise<Client> {
  const connection = await Connection.connect({ address: settings.temporalAddress });
  return new Client({ connection, namespace: settings.temporalNamespace });
}

export async function openMigratedDatabase(settings: RuntimeSettings): Promise<DatabaseHandle> {
  const handle = await openDatabase({ url: settings.databaseUrl, pgliteDir: settings.pgliteDir });
  await migrateDatabase(handle);
  return handle;
}
