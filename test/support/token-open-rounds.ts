/**
 * One of several processes that open the product's tokens at the same instants, as a cluster's
 * workers do when they start together: at `start + i * interval` for each round it opens every token
 * (runtime/services.ts openTokens, a fresh PKCS#11 initialization each time) and closes them again.
 * Prints one JSON line: the failures, by message.
 *
 *   node --import tsx test/support/token-open-rounds.ts <data dir> <start epoch ms> <interval ms> <rounds>
 */
import { runtimeSettings } from '../../config/runtime.js';
import { openTokens } from '../../runtime/services.js';

const [dir, start, interval, rounds] = process.argv.slice(2) as [string, string, string, string];
const settings = runtimeSettings({ ...process.env, PKI_DATA_DIR: dir, SOFTHSM_DIR: `${dir}/softhsm` });
const failures: string[] = [];
for (let i = 0; i < Number(rounds); i++) {
  const at = Number(start) + i * Number(interval);
  await new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));
  try {
    const tokens = await openTokens(settings, ['ra', 'ca', 'data']);
    await tokens.close();
  } catch (err) {
    failures.push(err instanceof Error ? err.message : String(err));
  }
}
process.stdout.write(`${JSON.stringify({ failures })}\n`);
