/**
 * `npm run ca:rollover -- --profile <name> [--promote-at <ISO>] [--retention-seconds N] [--settle-seconds N]`:
 * the key ceremony of an issuing-CA rotation. It creates the profile's next issuing CA in the CA
 * token (certificate signed by the root, which only a ceremony opens when it has its own token),
 * certifies the RA key under it, then starts the rotation workflow `ca/<profile>/rotation`, which
 * announces it (GetNextCACert), promotes it at --promote-at (default: now) and retires the old CA
 * (README "Issuing-CA rotation"). Safe to run again: a prepared next CA is kept; a running rotation
 * is reported, not started twice.
 */
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { prepareGeneration } from '../activities/ca/local-hsm/rotation.js';
import { findProfile, loadPkiConfig } from '../config/load.js';
import type { LocalCaConfig, Profile } from '../config/profile-types.js';
import { runtimeSettings } from '../config/runtime.js';
import { openDatabase } from '../db/client.js';
import { raCertificateLabel } from '../hsm/provision.js';
import { startCaRotation } from '../runtime/ca-rotation-client.js';
import { connectTemporal, openTokens, payloadCodecOf, TOKENS_OF } from '../runtime/services.js';
import { caRotationWorkflowId } from '../workflows/definitions.js';

const { values } = parseArgs({
  options: {
    profile: { type: 'string' },
    'promote-at': { type: 'string' },
    'retention-seconds': { type: 'string' },
    'settle-seconds': { type: 'string' },
  },
});
const config = loadPkiConfig();
const profile = values.profile ? findProfile(config, values.profile) : undefined;
const seconds = (name: 'retention-seconds' | 'settle-seconds') => {
  const raw = values[name];
  if (raw === undefined) return undefined;
  if (!/^[0-9]{1,10}$/.test(raw)) usage(`--${name} must be a whole number of seconds`);
  return Number(raw);
};
const promoteAt = values['promote-at'];
if (!profile) usage(`unknown or missing --profile`);
if (profile.ca.type !== 'local-hsm')
  usage(`profile "${profile.name}" has an upstream CA: its rollover happens at that CA`);
if (promoteAt !== undefined && Number.isNaN(Date.parse(promoteAt)))
  usage('--promote-at must be an ISO 8601 date-time');
const retentionSeconds = seconds('retention-seconds');
const settleSeconds = seconds('settle-seconds');

const settings = runtimeSettings();
// A ceremony: the root signs the next CA, the CA certifies the RA key the RA token holds.
const tokens = await openTokens(settings, TOKENS_OF.ceremony);
const database = await openDatabase({ url: settings.databaseUrl, pgliteDir: settings.pgliteDir });
try {
  const raCertificate = await tokens.get('ra').certificate(raCertificateLabel(config, profile.name));
  if (!raCertificate)
    throw new Error(`the RA token has no RA certificate for ${profile.name}: run npm run hsm:init`);
  const workflowId = caRotationWorkflowId(profile.name);
  const prepared = await prepareGeneration(
    { config, db: database.db, tokens },
    profile as Profile & { ca: LocalCaConfig },
    { workflowId, raCertificate, actor: `ceremony:${userInfo().username}` },
  );
  console.log(
    `prepared: next issuing CA of profile "${profile.name}": generation ${prepared.next.generation} ` +
      `("${prepared.next.keyLabel}"), valid until ${prepared.nextNotAfter}; current generation ${prepared.previous.generation}`,
  );
  const client = await connectTemporal(settings, payloadCodecOf(tokens.get('data')));
  try {
    const started = await startCaRotation(client, {
      profile: profile.name,
      ...(promoteAt ? { promoteAt: new Date(promoteAt).toISOString() } : {}),
      ...(retentionSeconds !== undefined ? { retentionSeconds } : {}),
      ...(settleSeconds !== undefined ? { settleSeconds } : {}),
      raCertificate: Buffer.from(raCertificate).toString('base64'),
      requestedBy: `ceremony:${userInfo().username}`,
    });
    console.log(
      started.outcome === 'started'
        ? `rotation started: workflow ${workflowId} (promotion ${promoteAt ? `at ${promoteAt}` : 'right after the announcement'})`
        : `rotation already running: workflow ${workflowId}`,
    );
  } finally {
    await client.connection.close();
  }
} catch (err) {
  console.error((err as Error).message);
  process.exitCode = 1;
} finally {
  await database.close();
  await tokens.close();
}

function usage(problem: string): never {
  console.error(
    `${problem}\nusage: ca-rollover --profile <name> [--promote-at <ISO>] [--retention-seconds N] [--settle-seconds N]` +
      `  (profiles: ${config.profiles.map((p) => p.name).join(', ')})`,
  );
  process.exit(2);
}
