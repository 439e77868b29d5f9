/**
 * SoftHSM's token store is files, and it is not safe for several processes opening it at once:
 * SoftHSM rewrites a token's file at every login, and a process that lists the slots or logs in at
 * that moment misses the token, fails its login (CKR_GENERAL_ERROR, CKR_USER_PIN_NOT_INITIALIZED) or
 * aborts on an assertion of SoftHSM's slot manager (test/unit/hsm-concurrent-start.test.ts). The
 * cluster's processes start together on one token directory, so they take turns here.
 *
 * The lock is a directory inside each token's own directory (SoftHSM reads only the files there), so
 * processes that share only some token volumes (docker-compose: a service mounts the tokens of its
 * job) still meet on the ones they share. A real HSM's library is left alone.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { softHsmTokenDir } from './softhsm.js';

const LOCK_DIR = 'pki-open.lock';

/** Runs `work` (a library initialization and login, or logout and finalization) holding the lock. */
export async function whileSoftHsmLocked<T>(library: string, work: () => Promise<T>): Promise<T> {
  const releases: Array<() => Promise<void>> = [];
  try {
    // Every process takes the locks in the same (sorted) order: none waits holding what another wants.
    for (const dir of /softhsm/i.test(library) ? tokenDirectories() : []) {
      const release = await lockfile
        .lock(dir, {
          lockfilePath: join(dir, LOCK_DIR),
          // A process killed while holding it: the others go on after this long.
          stale: 10_000,
          retries: { retries: 300, minTimeout: 10, maxTimeout: 100 },
          // Held for milliseconds; should another process take it meanwhile, the retries of
          // runtime/services.ts openTokens cover what SoftHSM then does (the default throws).
          onCompromised: () => {},
        })
        // A read-only token volume cannot be locked; SoftHSM cannot rewrite it either.
        .catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'EACCES' || err.code === 'EROFS' || err.code === 'EPERM') return undefined;
          throw new Error(`cannot lock SoftHSM token directory ${dir}: ${err.message}`, { cause: err });
        });
      if (release) releases.push(release);
    }
    return await work();
  } finally {
    for (const release of releases.reverse()) await release().catch(() => {});
  }
}

/** The token directories of SOFTHSM2_CONF's `directories.tokendir`, sorted; none without a config. */
function tokenDirectories(): string[] {
  const conf = process.env.SOFTHSM2_CONF;
  const tokenDir = conf ? softHsmTokenDir(conf) : undefined;
  if (!tokenDir || !existsSync(tokenDir)) return [];
  return readdirSync(tokenDir)
    .map((name) => join(tokenDir, name))
    .filter((path) => statSync(path, { throwIfNoEntry: false })?.isDirectory() === true)
    .sort();
}
