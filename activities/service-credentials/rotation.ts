/**
 * `pki` queue activities of a service credential's life (workflows/service-credential.ts): make the
 * next key in the data token, ask the operator to register its certificate with the identity
 * provider (outbox event), switch the adapters to it, retire the previous one. Every step is
 * idempotent on (name, generation): a retried activity finds what its first attempt did.
 */
import { and, desc, eq, inArray, ne } from 'drizzle-orm';
import type { PkiConfig } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { serviceCredentials } from '../../db/schema.js';
import type { HsmToken } from '../../hsm/token.js';
import { toPem } from '../../pki/pem.js';
import { certificateInfo } from '../../pki/x509/certificate.js';
import type { PkiEvent, ServiceCredentialActivities } from '../../workflows/activities.js';
import { serviceCredentialWorkflowId } from '../../workflows/definitions.js';
import { certificateThumbprintS256 } from '../mdm/client-assertion.js';
import { enqueueEvent } from '../notify/outbox.js';
import { type ServiceCredentialEntry, serviceCredentialNamed, serviceKeyLabel } from './registry.js';

/** Entra's certificate credentials are RSA; 2048 bits is what its documentation's examples use. */
const SERVICE_KEY_ALGORITHM = 'rsa-2048';

export interface ServiceCredentialDeps {
  config: PkiConfig;
  db: Database;
  /** The data token: the service keys live there (README "Service identity"); absent: no keys made here. */
  token: HsmToken | undefined;
}

export function createServiceCredentialActivities(deps: ServiceCredentialDeps): ServiceCredentialActivities {
  const { db } = deps;
  const entryOf = (name: string): ServiceCredentialEntry => {
    const entry = serviceCredentialNamed(deps.config, name);
    if (!entry) throw new Error(`service credential ${name} is not configured on this worker`);
    return entry;
  };
  const rowsOf = (name: string) =>
    db
      .select()
      .from(serviceCredentials)
      .where(eq(serviceCredentials.name, name))
      .orderBy(desc(serviceCredentials.generation));
  const renewAtOf = (entry: ServiceCredentialEntry, notAfter: Date) =>
    new Date(notAfter.getTime() - entry.settings.renewBeforeSeconds * 1000).toISOString();
  const event = (
    entry: ServiceCredentialEntry,
    type: PkiEvent['type'],
    generation: number,
    data: Record<string, unknown>,
  ): PkiEvent => ({
    id: `${serviceCredentialWorkflowId(entry.name)}/${generation}/${type}`,
    type,
    at: new Date().toISOString(),
    profile: entry.usedBy.name,
    deviceId: `service/${entry.name}`,
    workflowId: serviceCredentialWorkflowId(entry.name),
    data: { credential: entry.name, generation, ...data },
  });

  return {
    async serviceCredentialStatus({ name }) {
      const entry = entryOf(name);
      const rows = await rowsOf(name);
      const active = rows.find((r) => r.state === 'active');
      const pending = rows.find((r) => r.state === 'generated' || r.state === 'pending-registration');
      return {
        ...(active?.notAfter
          ? {
              active: {
                generation: active.generation,
                notAfter: active.notAfter.toISOString(),
                renewAt: renewAtOf(entry, active.notAfter),
              },
            }
          : {}),
        ...(pending ? { pending: { generation: pending.generation } } : {}),
        retiring: rows.filter((r) => r.state === 'retiring').map((r) => r.generation),
      };
    },

    async prepareServiceKey({ name }) {
      entryOf(name);
      const rows = await rowsOf(name);
      const pending = rows.find((r) => r.state === 'generated' || r.state === 'pending-registration');
      if (pending) return { generation: pending.generation, keyLabel: pending.keyLabel };
      const generation = (rows[0]?.generation ?? 0) + 1;
      const keyLabel = serviceKeyLabel(name, generation);
      const { token } = deps;
      if (!token)
        throw new Error(`this worker holds no data token to make the key of service credential ${name}`);
      // A first attempt that made the key and died before the insert left it in the token: use it.
      const spki =
        (await token.publicKey(keyLabel)) ??
        (await token.generateKeyPair(keyLabel, SERVICE_KEY_ALGORITHM, 'signing')).spki;
      await db
        .insert(serviceCredentials)
        .values({ name, generation, keyLabel, spki, state: 'generated' })
        .onConflictDoNothing();
      return { generation, keyLabel };
    },

    async requestServiceRegistration({ name, generation }) {
      const entry = entryOf(name);
      const [row] = await db
        .select()
        .from(serviceCredentials)
        .where(and(eq(serviceCredentials.name, name), eq(serviceCredentials.generation, generation)));
      if (!row?.certificate)
        throw new Error(`service credential ${name} #${generation} is not certified yet`);
      const info = certificateInfo(row.certificate);
      const details = {
        certificatePem: toPem(row.certificate),
        x5tS256: certificateThumbprintS256(row.certificate),
        serialHex: info.serialHex,
        notAfter: info.notAfter.toISOString(),
        keyLabel: row.keyLabel,
        clientId: entry.usedBy.mdm.type === 'intune' ? entry.usedBy.mdm.clientId : undefined,
      };
      await db.transaction(async (tx) => {
        const moved = await tx
          .update(serviceCredentials)
          .set({ state: 'pending-registration' })
          .where(
            and(
              eq(serviceCredentials.name, name),
              eq(serviceCredentials.generation, generation),
              eq(serviceCredentials.state, 'generated'),
            ),
          )
          .returning({ generation: serviceCredentials.generation });
        if (moved.length > 0)
          await enqueueEvent(
            tx,
            entry.usedBy.notifications,
            event(entry, 'service_credential.registration_needed', generation, details),
          );
      });
      return { x5tS256: details.x5tS256, notAfter: details.notAfter };
    },

    async activateServiceCredential({ name, generation }) {
      const entry = entryOf(name);
      return db.transaction(async (tx) => {
        const [row] = await tx
          .select()
          .from(serviceCredentials)
          .where(and(eq(serviceCredentials.name, name), eq(serviceCredentials.generation, generation)));
        if (!row?.certificate || !row.notAfter)
          throw new Error(`service credential ${name} #${generation} is not certified`);
        if (row.state === 'pending-registration') {
          // The one active row becomes the retiring one: still registered, no longer used.
          await tx
            .update(serviceCredentials)
            .set({ state: 'retiring' })
            .where(
              and(
                eq(serviceCredentials.name, name),
                eq(serviceCredentials.state, 'active'),
                ne(serviceCredentials.generation, generation),
              ),
            );
          await tx
            .update(serviceCredentials)
            .set({ state: 'active', activatedAt: new Date() })
            .where(and(eq(serviceCredentials.name, name), eq(serviceCredentials.generation, generation)));
        } else if (row.state !== 'active') {
          throw new Error(
            `service credential ${name} #${generation} is ${row.state}: it cannot become active`,
          );
        }
        return {
          renewAt: renewAtOf(entry, row.notAfter),
          notAfter: row.notAfter.toISOString(),
          overlapSeconds: entry.settings.overlapSeconds,
        };
      });
    },

    async retireServiceCredentials({ name, generations }) {
      const entry = entryOf(name);
      if (generations.length === 0) return;
      await db.transaction(async (tx) => {
        const retired = await tx
          .update(serviceCredentials)
          .set({ state: 'retired', retiredAt: new Date() })
          .where(
            and(
              eq(serviceCredentials.name, name),
              inArray(serviceCredentials.generation, generations),
              eq(serviceCredentials.state, 'retiring'),
            ),
          )
          .returning();
        // The operator removes it from the app registration; the key stays in the token (inventory).
        for (const row of retired)
          await enqueueEvent(
            tx,
            entry.usedBy.notifications,
            event(entry, 'service_credential.retired', row.generation, {
              x5tS256: row.certificate ? certificateThumbprintS256(row.certificate) : null,
              keyLabel: row.keyLabel,
            }),
          );
      });
    },
  };
}
