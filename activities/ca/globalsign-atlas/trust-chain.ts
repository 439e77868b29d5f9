/**
 * Atlas' trust chain, kept in the token so GetCACert serves it without calling Atlas: the issuing CA
 * under issuingCertificateLabel(profile) (what loadProfileChain reads) and the Atlas root beside it.
 */
import type { Profile } from '../../../config/profile-types.js';
import { issuingCertificateLabel } from '../../../hsm/provision.js';
import type { HsmToken } from '../../../hsm/token.js';
import { certificateInfo } from '../../../pki/x509/certificate.js';
import { type AtlasClient, type AtlasConfig, atlasClientFromConfig } from './client.js';
import { pemToDer } from './issuer.js';

/**
 * Fetches Atlas' trust chain and keeps it in the token: the issuing CA under
 * issuingCertificateLabel(profile) (what loadProfileChain reads) and the Atlas root beside it, so
 * GetCACert can serve both. Storing an unchanged certificate again is skipped.
 */
export async function provisionAtlasChain(
  token: HsmToken,
  profile: Profile,
  cfg: AtlasConfig,
  env: NodeJS.ProcessEnv = process.env,
  client: AtlasClient = atlasClientFromConfig(cfg, env),
): Promise<{ issuing: Uint8Array; root: Uint8Array | undefined }> {
  const chain = (await client.trustchain()).map(pemToDer);
  const [issuing, root] = chain;
  if (!issuing) throw new Error(`Atlas returned an empty trust chain for profile ${profile.name}`);
  if (!certificateInfo(issuing).isCa) {
    throw new Error(`Atlas trust chain of profile ${profile.name} starts with a non-CA certificate`);
  }
  await storeIfChanged(token, issuingCertificateLabel(profile), issuing);
  if (root) await storeIfChanged(token, upstreamRootLabel(profile), root);
  return { issuing, root };
}

export function upstreamRootLabel(profile: Profile): string {
  return `upstream-root/${profile.name}`;
}

async function storeIfChanged(token: HsmToken, label: string, der: Uint8Array): Promise<void> {
  const current = await token.certificate(label);
  if (current && Buffer.from(current).equals(Buffer.from(der))) return;
  await token.storeCertificate(label, der);
}
