import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureSoftHsmToken } from '../../hsm/softhsm.js';
import { type HsmConfig, HsmToken } from '../../hsm/token.js';
import { TokenSet } from '../../hsm/token-set.js';

/** A fresh SoftHSM token in its own temp directory, for tests that must not share the run's token. */
export async function createThrowawayToken(label: string): Promise<{ dir: string; config: HsmConfig }> {
  const dir = mkdtempSync(join(tmpdir(), `${label}-`));
  const config = await ensureSoftHsmToken({ dir: join(dir, 'hsm'), label, pin: '1234', soPin: '5678' });
  return { dir, config };
}

/**
 * The same, opened; close() logs out and removes the directory. `tokens` lets the one token play
 * every key domain: unit tests of certificates and CRLs, not of custody (test/e2e/key-custody).
 */
export async function openThrowawayToken(
  label: string,
): Promise<{ dir: string; token: HsmToken; tokens: TokenSet; close(): Promise<void> }> {
  const { dir, config } = await createThrowawayToken(label);
  const token = await HsmToken.open(config);
  return {
    dir,
    token,
    tokens: new TokenSet({ ra: token, ca: token, data: token }),
    async close() {
      await token.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
