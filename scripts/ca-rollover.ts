/**
 * `npm run ca:rollover -- --profile <name>`: prepares the profile's NEXT issuing CA in the HSM (key
 * and certificate under `<keyLabel>/next`, certificate signed by the root), which SCEP then offers
 * through GetNextCACert (and advertises in GetCACaps). Safe to run again: an existing next CA is kept.
 * Promoting the next CA to current is not automated yet.
 */
import { parseArgs } from 'node:util';
import { loadPkiConfig } from '../config/load.js';
import { runtimeSettings } from '../config/runtime.js';
import { createNextIssuingCa, nextIssuingCaLabel } from '../hsm/provision.js';
import { certificateInfo } from '../pki/x509/certificate.js';
import { openTokens, TOKENS_OF } from '../runtime/services.js';

const { values } = parseArgs({ options: { profile: { type: 'string' } } });
const config = loadPkiConfig();
const profile = config.profiles.find((p) => p.name === values.profile);
if (!profile) {
  console.error(
    `usage: ca-rollover --profile <name>  (profiles: ${config.profiles.map((p) => p.name).join(', ')})`,
  );
  process.exit(2);
}

// A ceremony: the CA (and root) token signs, the RA token receives the copy GetNextCACert serves.
const tokens = await openTokens(runtimeSettings(), TOKENS_OF.ceremony);
try {
  const { certificate, created } = await createNextIssuingCa(tokens, config, profile.name);
  const info = certificateInfo(certificate);
  console.log(
    `${created ? 'created' : 'already prepared'}: next issuing CA of profile "${profile.name}" ` +
      `("${nextIssuingCaLabel(profile)}") ${info.subject}, serial ${info.serialHex}, ` +
      `valid ${info.notBefore.toISOString()} to ${info.notAfter.toISOString()}`,
  );
} catch (err) {
  console.error((err as Error).message);
  process.exitCode = 1;
} finally {
  await tokens.close();
}
