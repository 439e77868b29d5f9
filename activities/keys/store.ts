/** Reads of the key inventory (GET /operator/keys, the console's Keys page, the metrics) and the operator's compromise mark. */
import { and, asc, eq, sql } from 'drizzle-orm';
import type { Database, Executor } from '../../db/client.js';
import { keyInventory } from '../../db/schema.js';
import { certificateInfo } from '../../pki/x509/certificate.js';
import type { KeyRole, KeyState } from './states.js';

export interface InventoryKey {
  token: string;
  tokenRole: string;
  label: string;
  role: KeyRole;
  algorithm: string;
  usages: string[];
  createdAt: string;
  state: KeyState;
  certificate?: { subject: string; serial: string; notAfter: string };
  notAfter?: string;
  signatures: number;
  /** When the process holding the token last listed it: the inventory is as of then. */
  observedAt: string;
  compromisedAt?: string;
}

/** Every recorded key, or the one named by `only`. */
export async function listKeyInventory(
  db: Database,
  only?: { token: string; label: string },
): Promise<InventoryKey[]> {
  const rows = await db
    .select()
    .from(keyInventory)
    .where(
      only ? and(eq(keyInventory.tokenLabel, only.token), eq(keyInventory.keyLabel, only.label)) : undefined,
    )
    .orderBy(asc(keyInventory.tokenLabel), asc(keyInventory.keyLabel));
  return rows.map((row) => {
    const info = row.certificateDer ? certificateInfo(row.certificateDer) : undefined;
    return {
      token: row.tokenLabel,
      tokenRole: row.tokenRole,
      label: row.keyLabel,
      role: row.role as KeyRole,
      algorithm: row.algorithm,
      usages: row.usages,
      createdAt: row.createdAt.toISOString(),
      state: row.state as KeyState,
      ...(info
        ? {
            certificate: {
              subject: info.subject,
              serial: info.serialHex,
              notAfter: info.notAfter.toISOString(),
            },
          }
        : {}),
      ...(row.notAfter ? { notAfter: row.notAfter.toISOString() } : {}),
      signatures: row.signatures,
      observedAt: row.lastSeenAt.toISOString(),
      ...(row.compromisedAt ? { compromisedAt: row.compromisedAt.toISOString() } : {}),
    };
  });
}

/** Marks a recorded key compromised (an operator's finding); false when the inventory has no such key. */
export async function markKeyCompromised(
  db: Executor,
  token: string,
  label: string,
  at: Date,
): Promise<boolean> {
  const updated = await db
    .update(keyInventory)
    .set({ state: 'compromised', compromisedAt: at })
    .where(and(eq(keyInventory.tokenLabel, token), eq(keyInventory.keyLabel, label)))
    .returning({ label: keyInventory.keyLabel });
  return updated.length > 0;
}

/**
 * Adds signature counts. A key not yet in the table (a listing has not run) keeps its count for the
 * next flush: what was written is removed from `counts`, the rest stays.
 */
export async function addSignatures(
  db: Database,
  counts: Map<string, { token: string; label: string; n: number }>,
): Promise<void> {
  for (const [id, { token, label, n }] of counts) {
    const updated = await db
      .update(keyInventory)
      .set({ signatures: sql`${keyInventory.signatures} + ${n}` })
      .where(and(eq(keyInventory.tokenLabel, token), eq(keyInventory.keyLabel, label)))
      .returning({ label: keyInventory.keyLabel });
    if (updated.length > 0) counts.delete(id);
  }
}
