/**
 * `npm run hsm:init`: the dev SoftHSM token under .data/softhsm with the whole CA hierarchy in it.
 * Safe to run again: it creates only what is missing (a new profile gets its issuing CA).
 */
import { loadPkiConfig } from '../config/load.js';
import { runtimeSettings } from '../config/runtime.js';
import { ensurePkiHierarchy, loadProfileChain } from '../hsm/provision.js';
import { ensureSoftHsmToken } from '../hsm/softhsm.js';
import { HsmToken } from '../hsm/token.js';
import { certificateInfo } from '../pki/x509/certificate.js';

const { hsm } = runtimeSettings();
const config = loadPkiConfig();
const hsmConfig = await ensureSoftHsmToken({
  dir: hsm.softhsmDir,
  label: hsm.tokenLabel,
  pin: hsm.pin,
  soPin: hsm.soPin,
});
const token = await HsmToken.open(hsmConfig);
try {
  await ensurePkiHierarchy(token, config);
  console.log(
    `SoftHSM token "${hsm.tokenLabel}" in ${hsm.softhsmDir} (SOFTHSM2_CONF=${process.env.SOFTHSM2_CONF})`,
  );
  for (const profile of config.profiles) {
    const chain = await loadProfileChain(token, config, profile.name);
    console.log(`profile "${profile.name}"`);
    for (const [role, der] of Object.entries(chain)) {
      const info = certificateInfo(der);
      console.log(`  ${role.padEnd(7)} ${info.subject}  (until ${info.notAfter.toISOString().slice(0, 10)})`);
    }
  }
} finally {
  await token.close();
}
