/**
 * `npm run hsm:init`: the key ceremony of a development or cluster deployment. SoftHSM tokens under
 * SOFTHSM_DIR (RA, CA, data; a root token when HSM_ROOT_TOKEN_LABEL is set), each with its own PIN,
 * the whole CA hierarchy in them, and the operator listener's TLS certificate. Safe to run again:
 * it creates only what is missing (a new profile gets its issuing CA) and tightens keys made by
 * older versions to their role's usage.
 */
import { loadPkiConfig } from '../config/load.js';
import { runtimeSettings } from '../config/runtime.js';
import { loadProfileChain } from '../hsm/provision.js';
import { certificateInfo } from '../pki/x509/certificate.js';
import { openProvisionedTokens } from '../runtime/services.js';

const settings = runtimeSettings();
const config = loadPkiConfig();
const tokens = await openProvisionedTokens(settings, config);
try {
  const labels = Object.entries(settings.hsm.tokens).map(([role, t]) => `${role} "${t.label}"`);
  console.log(`tokens ${labels.join(', ')} in ${settings.hsm.library ?? settings.hsm.softhsmDir}`);
  console.log(`operator listener certificate ${settings.operator.certFile}`);
  for (const profile of config.profiles) {
    const chain = await loadProfileChain(tokens.get('ra'), config, profile.name);
    console.log(`profile "${profile.name}"`);
    for (const [role, der] of Object.entries(chain)) {
      const info = certificateInfo(der);
      console.log(`  ${role.padEnd(7)} ${info.subject}  (until ${info.notAfter.toISOString().slice(0, 10)})`);
    }
  }
} finally {
  await tokens.close();
}
