import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import type { PayloadCodec } from '@temporalio/common';
import { sql } from 'drizzle-orm';
import { provisionAtlasChain } from '../activities/ca/globalsign-atlas/trust-chain.js';
import { isProduction } from '../config/production.js';
import type { PkiConfig } from '../config/profile-types.js';
import type { RuntimeSettings, TokenRole } from '../config/runtime.js';
import { type DatabaseHandle, migrateDatabase, openDatabase } from '../db/client.js';
import { grantApplicationRole, pendingMigrations } from '../db/roles.js';
import { ensurePkiHierarchy, issuingCertificateLabel, PAYLOAD_KEK_LABEL } from '../hsm/provision.js';
import { ensureSoftHsmTokens } from '../hsm/softhsm.js';
import { HsmToken, HsmTokenUnavailableError } from '../hsm/token.js';
import { TokenSet } from '../hsm/token-set.js';
import { componentLogger } from './log.js';
import { ensureOperatorTlsCertificate } from './operator-tls.js';
import { HsmPayloadCodec } from './payload-codec.js';

/** What each process opens (DESIGN.md "Key domains"): nothing more than its job needs. */
export const TOKENS_OF = {
  /** SCEP (RA key), OCSP (responder keys), the chain it serves, the payload codec (data). */
  api: ['ra', 'data'],
  /** MDM checks, storage, hand-offs: only data keys (sealing, payload codec). */
  pki: ['data'],
  /** Our CAs sign here and only here. */
  'pki-hsm': ['ca', 'data'],
  /** Key ceremonies: provisioning, CA rollover. */
  ceremony: ['ra', 'ca', 'data', 'root'],
} as const satisfies Record<string, readonly TokenRole[]>;

/**
 * Opens the tokens of `roles`. With PKCS11_LIBRARY/SOFTHSM2_LIB set they are someone else's
 * (production: a real HSM or provisioned SoftHSM volumes); otherwise project-local SoftHSM tokens
 * under .data/, created when missing. The root token is opened only when one is configured (else
 * the root lives in the CA token).
 */
export async function openTokens(
  settings: RuntimeSettings,
  roles: readonly TokenRole[],
  opts: { create?: boolean } = {},
): Promise<TokenSet> {
  const { hsm } = settings;
  const wanted = [...new Set(roles)].filter((role) => role !== 'root' || hsm.tokens.root !== undefined);
  const configured = (role: TokenRole) => hsm.tokens[role]!;
  let library = hsm.library;
  // The key ceremony creates missing SoftHSM tokens even when the library is named (the cluster and
  // the container image name it); a real HSM's tokens are its administrators' to create.
  const softhsm = !library || (opts.create === true && /softhsm/i.test(library));
  if (softhsm) {
    // SoftHSM reads its tokens once per process: create every configured one before opening any.
    const all = (['ra', 'ca', 'data', 'root'] as const).filter((r) => hsm.tokens[r] !== undefined);
    const created = await ensureSoftHsmTokens({
      dir: hsm.softhsmDir,
      soPin: hsm.soPin,
      tokens: all.map(configured),
    });
    library = created[0]!.library;
  }
  if (!library) throw new Error('no PKCS#11 library (set PKCS11_LIBRARY)');
  for (let attempt = 0; ; attempt++) {
    const opened: Partial<Record<TokenRole, HsmToken>> = {};
    try {
      for (const role of wanted) {
        const { label, pin } = configured(role);
        opened[role] = await HsmToken.open({ library, tokenLabel: label, pin });
      }
      return new TokenSet(opened);
    } catch (err) {
      // Closing every token releases the library, so the next try lists the slots afresh.
      await new TokenSet(opened).close();
      const wait = TOKEN_LOOKUP_RETRY_MS[attempt];
      // Never retried: a wrong PIN (a retry loop would lock the token) or any other failure.
      if (!(err instanceof HsmTokenUnavailableError) || wait === undefined) throw err;
      componentLogger('hsm').warn(
        { tokenLabel: err.tokenLabel, attempt: attempt + 1, retryInMs: wait, reason: err.message },
        'HSM token unavailable; trying again (another process may be logging in to it)',
      );
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/**
 * Waits before each new try of a token that was unavailable. SoftHSM hides a token from a process
 * that lists the slots, or fails its login, while another process logs in to it, which processes
 * starting together do (the cluster's workers: one exited with "no PKCS#11 token labelled
 * device-pki-data"). A token that is really missing still fails, after about 4.5 s.
 */
const TOKEN_LOOKUP_RETRY_MS = [100, 200, 400, 800, 1_000, 1_000, 1_000] as const;

/**
 * Dev, tests and provisioning: every token, holding the whole hierarchy the config names, and the
 * operator listener's certificate (created on first run, renewed when due).
 */
export async function openProvisionedTokens(settings: RuntimeSettings, config: PkiConfig): Promise<TokenSet> {
  const tokens = await openTokens(settings, TOKENS_OF.ceremony, { create: true });
  await ensurePkiHierarchy(tokens, config);
  await ensureUpstreamChains(tokens.get('ra'), config);
  await ensureOperatorTlsCertificate(tokens, config, settings);
  return tokens;
}

/**
 * Upstream CA profiles: their trust chain (fetched from the CA) is kept in the token, so GetCACert
 * works without calling the CA. Unreachable CA + a chain already stored: carry on with a warning.
 */
export async function ensureUpstreamChains(token: HsmToken, config: PkiConfig): Promise<void> {
  for (const profile of config.profiles) {
    if (profile.ca.type !== 'globalsign-atlas') continue;
    try {
      await provisionAtlasChain(token, profile, profile.ca);
    } catch (err) {
      if (!(await token.certificate(issuingCertificateLabel(profile)))) throw err;
      componentLogger('pki').warn(
        { profile: profile.name, err },
        'keeping the stored Atlas trust chain (the upstream one could not be read)',
      );
    }
  }
}

/** The Temporal frontend address, with TLS (and a client certificate) when the cluster asks for it. */
export function temporalConnectionOptions(settings: RuntimeSettings): {
  address: string;
  tls?: {
    clientCertPair?: { crt: Buffer; key: Buffer };
    serverRootCACertificate?: Buffer;
    serverNameOverride?: string;
  };
} {
  const tls = settings.temporalTls;
  if (!tls) return { address: settings.temporalAddress };
  if (tls.certFile && !tls.keyFile) throw new Error('TEMPORAL_TLS_CERT needs TEMPORAL_TLS_KEY');
  return {
    address: settings.temporalAddress,
    tls: {
      ...(tls.certFile && tls.keyFile
        ? { clientCertPair: { crt: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) } }
        : {}),
      ...(tls.caFile ? { serverRootCACertificate: readFileSync(tls.caFile) } : {}),
      ...(tls.serverName ? { serverNameOverride: tls.serverName } : {}),
    },
  };
}

/**
 * The longest wait between two attempts of the client to reach Temporal again. grpc-js backs off up
 * to 120 s by default, so after an outage of a few minutes a replica stayed unready (and devices got
 * errors) for up to two minutes after Temporal was back; capped, it is back within about 5 s.
 */
const TEMPORAL_MAX_RECONNECT_BACKOFF_MS = 5_000;

/** A Temporal client whose payloads are encrypted (runtime/payload-codec.ts). */
export async function connectTemporal(settings: RuntimeSettings, codec: PayloadCodec): Promise<Client> {
  const connection = await Connection.connect({
    ...temporalConnectionOptions(settings),
    channelArgs: { 'grpc.max_reconnect_backoff_ms': TEMPORAL_MAX_RECONNECT_BACKOFF_MS },
  });
  return new Client({
    connection,
    namespace: settings.temporalNamespace,
    dataConverter: { payloadCodecs: [codec] },
  });
}

/** The payload codec of this process: data keys wrapped by the payload KEK in the data token. */
export function payloadCodecOf(data: HsmToken, env: NodeJS.ProcessEnv = process.env): HsmPayloadCodec {
  return new HsmPayloadCodec({
    kekLabel: env.PAYLOAD_KEK_LABEL || PAYLOAD_KEK_LABEL,
    kek: (label) => data.sealer(label),
  });
}

/**
 * The database of an API or worker process, schema current. With DATABASE_MIGRATION_URL the owner
 * migrates and grants the application role, then the process connects as that role; without it,
 * development migrates with DATABASE_URL itself, while production only checks that the schema is
 * current (`npm run db:migrate` is a deployment step) and that it is not connected as the owner.
 */
export async function openMigratedDatabase(
  settings: RuntimeSettings,
  env: NodeJS.ProcessEnv = process.env,
): Promise<DatabaseHandle> {
  if (settings.databaseMigrationUrl) await migrateAsOwner(settings);
  const handle = await openDatabase({ url: settings.databaseUrl, pgliteDir: settings.pgliteDir });
  try {
    let pending = await pendingMigrations(handle);
    if (pending > 0 && !settings.databaseMigrationUrl && !isProduction(env)) {
      await migrateDatabase(handle);
      pending = await pendingMigrations(handle);
    }
    if (pending > 0)
      throw new Error(
        `the database schema is ${pending} migration(s) behind this release: run \`npm run db:migrate\` ` +
          'with DATABASE_MIGRATION_URL (the schema owner) first',
      );
    if (isProduction(env) && handle.kind === 'postgres' && (await connectedAsOwner(handle)))
      throw new Error(
        'DATABASE_URL connects as the owner of the schema: it could alter tables and drop the audit ' +
          'trigger. Connect as the application role (see README, "Database roles")',
      );
    return handle;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Applies the migrations as the schema owner and (re)grants the application role. */
export async function migrateAsOwner(settings: RuntimeSettings): Promise<void> {
  const owner = await openDatabase({ url: settings.databaseMigrationUrl, pgliteDir: settings.pgliteDir });
  try {
    await migrateDatabase(owner);
    if (settings.databaseAppRole) await grantApplicationRole(owner, settings.databaseAppRole);
  } finally {
    await owner.close();
  }
}

async function connectedAsOwner(handle: DatabaseHandle): Promise<boolean> {
  const rows = (await handle.db.execute(
    sql`SELECT tableowner = current_user AS owner FROM pg_tables WHERE tablename = 'audit_events'`,
  )) as unknown as Array<{ owner: boolean }>;
  return rows[0]?.owner === true;
}
