/**
 * Records the keys of the tokens this process holds into `key_inventory` (db/schema.ts) and raises
 * the age and expiry events. Each process lists only its own tokens (key custody), so the table is
 * the one place every key of every token can be seen; GET /operator/keys reads it.
 */
import { and, eq, notInArray, sql } from 'drizzle-orm';
import type { PkiConfig } from '../../config/profile-types.js';
import type { TokenRole } from '../../config/runtime.js';
import type { Database } from '../../db/client.js';
import { keyInventory } from '../../db/schema.js';
import type { TokenSet } from '../../hsm/token-set.js';
import { certificateInfo } from '../../pki/x509/certificate.js';
import type { PkiEvent } from '../../workflows/activities.js';
import { enqueueEvent } from '../notify/outbox.js';
import { keyRoleOf, keyState } from './states.js';

const DAY_MS = 86_400_000;

export interface RecordedToken {
  tokenLabel: string;
  tokenRole: TokenRole;
  keyLabels: string[];
}

/** Lists every token of `tokens` into the inventory, marks keys gone from a token destroyed, raises events. */
export async function recordKeyInventory(
  db: Database,
  tokens: TokenSet,
  config: PkiConfig,
  now: Date = new Date(),
): Promise<RecordedToken[]> {
  const recorded: RecordedToken[] = [];
  const seen = new Set<string>();
  // The root may live on the CA token: one token, listed once, under its first role.
  for (const tokenRole of tokens.roles()) {
    const token = tokens.get(tokenRole);
    if (seen.has(token.tokenLabel)) continue;
    seen.add(token.tokenLabel);
    const keys = await token.listKeys();
    for (const key of keys) {
      const notAfter = key.certificate ? certificateInfo(key.certificate).notAfter : undefined;
      const values = {
        tokenLabel: token.tokenLabel,
        keyLabel: key.label,
        tokenRole,
        role: keyRoleOf(config, key.label),
        algorithm: key.algorithm,
        usages: key.usages,
        createdAt: key.startDate ?? now,
        state: keyState(key, notAfter, now),
        certificateDer: key.certificate ?? null,
        notAfter: notAfter ?? null,
        firstSeenAt: now,
        lastSeenAt: now,
      };
      await db
        .insert(keyInventory)
        .values(values)
        .onConflictDoUpdate({
          target: [keyInventory.tokenLabel, keyInventory.keyLabel],
          set: {
            tokenRole: values.tokenRole,
            role: values.role,
            algorithm: values.algorithm,
            usages: values.usages,
            // Without CKA_START_DATE the first sighting stands for the creation; a key made again
            // under a destroyed key's label starts over.
            createdAt: key.startDate
              ? key.startDate
              : sql`CASE WHEN ${keyInventory.state} = 'destroyed' THEN ${now.toISOString()}::timestamptz ELSE ${keyInventory.createdAt} END`,
            // An operator's compromised mark outlives every listing.
            state: sql`CASE WHEN ${keyInventory.compromisedAt} IS NOT NULL THEN 'compromised' ELSE ${values.state} END`,
            certificateDer: values.certificateDer,
            notAfter: values.notAfter,
            lastSeenAt: now,
          },
        });
    }
    const labels = keys.map((k) => k.label);
    await db
      .update(keyInventory)
      .set({ state: 'destroyed' })
      .where(
        and(
          eq(keyInventory.tokenLabel, token.tokenLabel),
          sql`${keyInventory.state} <> 'destroyed'`,
          ...(labels.length > 0 ? [notInArray(keyInventory.keyLabel, labels)] : []),
        ),
      );
    recorded.push({ tokenLabel: token.tokenLabel, tokenRole, keyLabels: labels });
  }
  await raiseKeyEvents(db, config, [...seen], now);
  return recorded;
}

/**
 * `key.age_exceeded` once per key (its creation is part of the event id) and `key.expiring` once per
 * certificate (its end is part of the id): the outbox ignores an id it has, so every later listing
 * raises nothing new until the key or certificate changes.
 */
async function raiseKeyEvents(
  db: Database,
  config: PkiConfig,
  tokenLabels: string[],
  now: Date,
): Promise<void> {
  if (tokenLabels.length === 0) return;
  const { maxAgeDays, expiryWarningDays, notifications } = config.keys;
  const due = await db
    .select()
    .from(keyInventory)
    .where(
      and(
        sql`${keyInventory.tokenLabel} IN ${tokenLabels}`,
        sql`${keyInventory.state} NOT IN ('destroyed')`,
        sql`(${keyInventory.createdAt} <= ${new Date(now.getTime() - maxAgeDays * DAY_MS).toISOString()}::timestamptz
          OR ${keyInventory.notAfter} <= ${new Date(now.getTime() + expiryWarningDays * DAY_MS).toISOString()}::timestamptz)`,
      ),
    );
  for (const key of due) {
    const subject = `${key.tokenLabel}/${key.keyLabel}`;
    const event = (
      type: 'key.age_exceeded' | 'key.expiring',
      id: string,
      data: Record<string, unknown>,
    ): PkiEvent => ({
      type,
      id,
      at: now.toISOString(),
      profile: '*',
      deviceId: subject,
      workflowId: '',
      data: {
        token: key.tokenLabel,
        label: key.keyLabel,
        role: key.role,
        algorithm: key.algorithm,
        state: key.state,
        ...data,
      },
    });
    const ageDays = (now.getTime() - key.createdAt.getTime()) / DAY_MS;
    if (ageDays >= maxAgeDays)
      await enqueueEvent(
        db,
        notifications,
        event('key.age_exceeded', `keys/age/${subject}/${key.createdAt.toISOString()}`, {
          createdAt: key.createdAt.toISOString(),
          ageDays: Math.floor(ageDays),
          maxAgeDays,
        }),
      );
    if (key.notAfter && key.notAfter.getTime() <= now.getTime() + expiryWarningDays * DAY_MS)
      await enqueueEvent(
        db,
        notifications,
        event('key.expiring', `keys/expiry/${subject}/${key.notAfter.toISOString()}`, {
          notAfter: key.notAfter.toISOString(),
          expiryWarningDays,
        }),
      );
  }
}
