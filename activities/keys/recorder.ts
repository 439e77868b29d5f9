/**
 * The key inventory of one process: lists its tokens at start and every `keys.refreshSeconds`, and
 * counts the signatures its tokens make. Counting is in memory on the signing path (a Map
 * increment) and written every few seconds as one UPDATE per key that signed, so an HSM signature
 * never waits for the database; a crash loses at most the last interval's counts.
 */
import type { PkiConfig } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import type { TokenSet } from '../../hsm/token-set.js';
import { recordKeyInventory } from './inventory.js';
import { addSignatures } from './store.js';

const FLUSH_MS = 2_000;

export interface KeyInventoryRecorder {
  /** Lists the tokens now (also what the timer does). */
  refresh(now?: Date): Promise<void>;
  /** Writes the signature counts gathered so far. */
  flush(): Promise<void>;
  stop(): Promise<void>;
}

export async function startKeyInventory(opts: {
  db: Database;
  tokens: TokenSet;
  config: PkiConfig;
  onError?: (err: unknown) => void;
}): Promise<KeyInventoryRecorder> {
  const { db, tokens, config } = opts;
  const report = opts.onError ?? ((err) => console.warn(`[keys] inventory: ${(err as Error).message}`));
  const pending = new Map<string, { token: string; label: string; n: number }>();
  const unsubscribe: Array<() => void> = [];
  for (const token of new Set(tokens.roles().map((role) => tokens.get(role))))
    unsubscribe.push(
      token.onSignature((label) => {
        const id = `${token.tokenLabel}\u0000${label}`;
        const entry = pending.get(id);
        if (entry) entry.n++;
        else pending.set(id, { token: token.tokenLabel, label, n: 1 });
      }),
    );

  // One write at a time: a slow flush must not overlap the next and count twice.
  let writing: Promise<void> = Promise.resolve();
  const serial = (work: () => Promise<void>) => {
    writing = writing.then(work, work).catch(report);
    return writing;
  };
  const flush = () =>
    serial(async () => {
      if (pending.size === 0) return;
      const batch = new Map(pending);
      pending.clear();
      await addSignatures(db, batch);
      // Keys not recorded yet keep their counts for the next flush.
      for (const [id, entry] of batch) {
        const later = pending.get(id);
        pending.set(id, later ? { ...entry, n: entry.n + later.n } : entry);
      }
    });
  const refresh = (now?: Date) =>
    serial(async () => {
      await recordKeyInventory(db, tokens, config, now);
    });

  await refresh();
  const flushTimer = setInterval(() => void flush(), FLUSH_MS);
  const refreshTimer = setInterval(() => void refresh(), config.keys.refreshSeconds * 1000);
  flushTimer.unref();
  refreshTimer.unref();
  return {
    refresh,
    flush,
    async stop() {
      clearInterval(flushTimer);
      clearInterval(refreshTimer);
      for (const off of unsubscribe) off();
      await flush();
    },
  };
}
