/**
 * Key inventory metrics (prom-client), read from `key_inventory` at scrape time so every API replica
 * answers the same (the tokens are listed by other processes). Served on the API's /metrics beside
 * the fleet metrics (api/operator/metrics.ts).
 * Alert rules: `pki_key_expiry_timestamp_seconds - time() < 60*86400` (keys.expiryWarningDays) and
 * `time() - pki_key_created_timestamp_seconds > maxAge` mirror the `key.expiring` and
 * `key.age_exceeded` events.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { Database } from '../../db/client.js';
import { type InventoryKey, listKeyInventory } from './store.js';

export function keyInventoryRegistry(db: Database): Registry {
  const registry = new Registry();
  // One read of the table per scrape, shared by the metrics below.
  let current: { at: number; keys: Promise<InventoryKey[]> } | undefined;
  const keys = () => {
    if (!current || Date.now() - current.at > 1_000) current = { at: Date.now(), keys: listKeyInventory(db) };
    return current.keys;
  };
  const labelsOf = (k: InventoryKey) => ({ token: k.token, label: k.label, role: k.role });
  const live = (k: InventoryKey) => k.state !== 'destroyed';

  new Gauge({
    name: 'pki_key_expiry_timestamp_seconds',
    help: "End of the certificate of each HSM key that has one (Unix seconds), as the key's process last listed its token",
    labelNames: ['token', 'label', 'role'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const k of (await keys()).filter(live))
        if (k.notAfter) this.set(labelsOf(k), Date.parse(k.notAfter) / 1000);
    },
  });
  new Gauge({
    name: 'pki_key_created_timestamp_seconds',
    help: 'When each HSM key was made (CKA_START_DATE, else first seen by the inventory), Unix seconds',
    labelNames: ['token', 'label', 'role'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const k of (await keys()).filter(live)) this.set(labelsOf(k), Date.parse(k.createdAt) / 1000);
    },
  });
  new Counter({
    name: 'pki_key_signatures_total',
    help: 'Signatures made with each HSM key, counted in the database by the processes that signed',
    labelNames: ['token', 'label', 'role'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const k of await keys()) if (k.signatures > 0) this.inc(labelsOf(k), k.signatures);
    },
  });
  return registry;
}
