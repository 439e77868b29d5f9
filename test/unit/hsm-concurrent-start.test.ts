import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { PROJECT_ROOT } from '../../config/load.js';
import { runtimeSettings } from '../../config/runtime.js';
import { ensureSoftHsmTokens, findSoftHsmLibrary } from '../../hsm/softhsm.js';
import { HsmToken, HsmTokenUnavailableError } from '../../hsm/token.js';
import { openTokens } from '../../runtime/services.js';

const run = promisify(execFile);

/**
 * The cluster starts its workers together, each opening the same SoftHSM token directory. SoftHSM
 * rewrites a token's file when a process logs in, and another process listing the slots or logging
 * in at that moment misses the token or fails its login: a worker exited at start with "no PKCS#11
 * token labelled device-pki-data" (tokens present: the two others). Every process must start.
 */
describe('processes opening the same SoftHSM tokens at the same moment', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hsm-concurrent-start-'));
  const env = {
    ...process.env,
    HSM_RA_PIN: '1111',
    HSM_CA_PIN: '2222',
    HSM_DATA_PIN: '3333',
    // The tokens as a deployment names them: the library given, the tokens used as they are.
    SOFTHSM2_LIB: findSoftHsmLibrary(),
  };

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('four processes, 25 simultaneous opens each: every one opens all three tokens', async () => {
    const { hsm } = runtimeSettings({ ...env, PKI_DATA_DIR: dir, SOFTHSM_DIR: join(dir, 'softhsm') });
    await ensureSoftHsmTokens({
      dir: hsm.softhsmDir,
      soPin: hsm.soPin,
      tokens: [hsm.tokens.ra, hsm.tokens.ca, hsm.tokens.data],
    });
    // Time for the four to start (tsx) before the first round.
    const start = Date.now() + 5_000;
    const processes = Array.from({ length: 4 }, () =>
      run(
        process.execPath,
        ['--import', 'tsx', 'test/support/token-open-rounds.ts', dir, String(start), '250', '25'],
        { cwd: PROJECT_ROOT, env: { ...env, SOFTHSM2_CONF: process.env.SOFTHSM2_CONF, LOG_LEVEL: 'error' } },
      ),
    );
    const failures = (await Promise.all(processes)).flatMap(
      ({ stdout }) => (JSON.parse(stdout.trim().split('\n').at(-1)!) as { failures: string[] }).failures,
    );
    expect(failures).toEqual([]);
  }, 120_000);

  it('never tries a wrong PIN twice (each try would count against it), and names a missing token after its retries', async () => {
    const settings = runtimeSettings({ ...env, PKI_DATA_DIR: dir, SOFTHSM_DIR: join(dir, 'softhsm') });
    const opens = vi.spyOn(HsmToken, 'open');
    const wrongPin = {
      ...settings,
      hsm: {
        ...settings.hsm,
        tokens: { ...settings.hsm.tokens, data: { ...settings.hsm.tokens.data, pin: '0000' } },
      },
    };
    await expect(openTokens(wrongPin, ['data'])).rejects.toThrow(/CKR_PIN_INCORRECT/);
    expect(opens).toHaveBeenCalledTimes(1);

    opens.mockClear();
    const missing = {
      ...settings,
      hsm: {
        ...settings.hsm,
        tokens: { ...settings.hsm.tokens, data: { ...settings.hsm.tokens.data, label: 'no-such-token' } },
      },
    };
    const refused = await openTokens(missing, ['data']).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(HsmTokenUnavailableError);
    expect((refused as Error).message).toMatch(
      /no PKCS#11 token labelled "no-such-token" \(tokens present: /,
    );
    expect(opens.mock.calls.length).toBeGreaterThan(1);
    // The right PIN still opens it: nothing was locked.
    const tokens = await openTokens(settings, ['data']);
    await tokens.close();
  }, 60_000);
});
