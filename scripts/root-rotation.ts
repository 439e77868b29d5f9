/**
 * `npm run ca:root-rotation -- [--dry-run] [--new-label <label>]`: the root rotation ceremony
 * (hsm/root-rotation.ts). Creates the next root (key and self-signed certificate, `root-ca/2` after
 * `root-ca`), the two cross-certificates between the old and new roots, and a certificate of each
 * issuing CA under the new root; prints every certificate as PEM for distribution (README "Root
 * rotation ceremony"). `--dry-run` lists what would be made and writes nothing. Safe to run again.
 */
import { parseArgs } from 'node:util';
import { loadPkiConfig } from '../config/load.js';
import { runtimeSettings } from '../config/runtime.js';
import { rotateRoot } from '../hsm/root-rotation.js';
import { toPem } from '../pki/pem.js';
import { certificateInfo } from '../pki/x509/certificate.js';
import { openTokens, TOKENS_OF } from '../runtime/services.js';

const { values } = parseArgs({
  options: { 'dry-run': { type: 'boolean', default: false }, 'new-label': { type: 'string' } },
});
const config = loadPkiConfig();

// A ceremony: the root token signs, the CA token's issuing CAs are certified, the RA token gets copies.
const tokens = await openTokens(runtimeSettings(), TOKENS_OF.ceremony);
try {
  const result = await rotateRoot(tokens, config, {
    dryRun: values['dry-run'],
    ...(values['new-label'] ? { newLabel: values['new-label'] } : {}),
  });
  console.log(
    `${values['dry-run'] ? 'dry run: ' : ''}root rotation "${result.oldLabel}" -> "${result.newLabel}"`,
  );
  for (const step of result.steps) {
    const info = step.certificate ? certificateInfo(step.certificate) : undefined;
    console.log(
      `  ${step.outcome.padEnd(7)} ${step.kind} "${step.label}": ${step.description}` +
        (info ? ` (${info.subject}, serial ${info.serialHex}, until ${info.notAfter.toISOString()})` : ''),
    );
  }
  for (const step of result.steps)
    if (step.certificate) console.log(`# ${step.label}\n${toPem(step.certificate)}`);
} catch (err) {
  console.error((err as Error).message);
  process.exitCode = 1;
} finally {
  await tokens.close();
}
