import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import {
  AtlasClient,
  type AtlasConfig,
  AtlasUnavailableError,
} from '../../activities/ca/globalsign-atlas/client.js';
import { atlasAdapter } from '../../activities/ca/globalsign-atlas/issuer.js';
import { provisionAtlasChain, upstreamRootLabel } from '../../activities/ca/globalsign-atlas/trust-chain.js';
import type { IssuanceRequest } from '../../activities/ca/issuance-request.js';
import { type Profile, pkiConfigSchema } from '../../config/profile-types.js';
import { type DatabaseHandle, openDatabase } from '../../db/client.js';
import { upstreamSubmissions } from '../../db/schema.js';
import { issuingCertificateLabel } from '../../hsm/provision.js';
import { ensureSoftHsmToken } from '../../hsm/softhsm.js';
import { HsmToken } from '../../hsm/token.js';
import { applySubjectTemplate } from '../../pki/admission/subject-template.js';
import { certificateInfo } from '../../pki/x509/certificate.js';
import { parseCsr } from '../../pki/x509/csr.js';
import { type FakeAtlas, startFakeAtlas } from '../fakes/atlas.js';

const run = promisify(execFile);
const ENV = { ATLAS_API_KEY: 'atlas-key', ATLAS_API_SECRET: 'atlas-secret' };

let fake: FakeAtlas;
let handle: DatabaseHandle;
let dir: string;
let cfg: AtlasConfig;
let profile: Profile;

beforeAll(async () => {
  const { databaseUrl } = inject('stack');
  handle = await openDatabase({ url: databaseUrl, pgliteDir: '' });
  fake = await startFakeAtlas({ apiKey: ENV.ATLAS_API_KEY, apiSecret: ENV.ATLAS_API_SECRET });
  dir = mkdtempSync(join(tmpdir(), 'atlas-test-'));
  cfg = { ...fake.caConfig(), pollIntervalMs: 100, timeoutMs: 5000 } as AtlasConfig;
  // Through the schema, so defaults added to profiles later are filled in here too.
  profile = pkiConfigSchema.parse({
    rootCa: { keyLabel: 'root', keyAlgorithm: 'ec-p256', subject: [['CN', 'unused']], validityDays: 1 },
    ra: { keyLabel: 'ra', keyAlgorithm: 'rsa-2048', subject: [['CN', 'unused']] },
    profiles: [
      {
        name: 'atlas-fleet',
        mdm: { type: 'static-challenge', challenge: 'x' },
        ca: cfg,
        template: {
          validitySeconds: 86400,
          keyUsages: ['digitalSignature', 'keyEncipherment'],
          extendedKeyUsages: ['1.3.6.1.5.5.7.3.2'],
          minRsaBits: 2048,
          allowedCurves: ['P-256'],
          // What Atlas is asked for comes from here, not from the CSR.
          subject: [
            ['O', 'Device PKI'],
            ['OU', 'fleet'],
            ['CN', '{{device.id}}'],
          ],
          subjectAltNames: { dns: ['{{device.id}}.devices.example'] },
          requesterChosenCommonName: true,
        },
        enrollmentWaitMs: 1000,
      },
    ],
  }).profiles[0]!;
});

afterAll(async () => {
  await fake?.close();
  await handle?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  fake.pendingRounds = 0;
  fake.rejectCommonName = undefined;
  fake.failNext(0);
});

async function csrFor(cn: string): Promise<string> {
  const out = join(dir, `${randomUUID()}.der`);
  await run('openssl', [
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    join(dir, `${randomUUID()}.key`),
    '-subj',
    `/O=Device PKI/OU=fleet/CN=${cn}`,
    '-addext',
    `subjectAltName=DNS:${cn}.devices.example`,
    '-outform',
    'DER',
    '-out',
    out,
  ]);
  return readFileSync(out).toString('base64');
}

/** A checked issuance request, as activities/ca/index.ts hands it to the adapter. */
async function inputFor(cn: string): Promise<IssuanceRequest & { notAfterIso: string }> {
  const now = Date.now();
  const parsed = await parseCsr(Buffer.from(await csrFor(cn), 'base64'));
  if (!parsed.ok) throw new Error(parsed.message);
  const identity = { deviceId: cn, vouchedBy: null, attributes: { id: cn, commonName: cn } };
  const templated = applySubjectTemplate(profile.template, identity, parsed.csr);
  if (!templated.ok) throw new Error(templated.reason);
  const notAfter = new Date(now + 86_400_000);
  return {
    profile,
    enrollmentId: `enroll/${profile.name}/${randomUUID()}`,
    deviceId: cn,
    identity,
    csr: parsed.csr,
    certificate: templated.certificate,
    notBefore: new Date(now - 60_000),
    notAfter,
    notAfterIso: notAfter.toISOString(),
  };
}

function issuerWith(extra: { heartbeat?: (d: unknown) => void; sleep?: (ms: number) => Promise<void> } = {}) {
  const adapter = atlasAdapter(cfg, profile, {
    db: handle.db,
    env: ENV,
    sleep: extra.sleep ?? (async () => {}),
    ...(extra.heartbeat ? { heartbeat: extra.heartbeat } : {}),
  });
  return {
    async issue(request: IssuanceRequest) {
      const { der, issuingCa } = await adapter.issue(request);
      const info = certificateInfo(der);
      return {
        certificate: Buffer.from(der).toString('base64'),
        serialHex: info.serialHex,
        issuingCa,
        notAfter: info.notAfter.toISOString(),
        sha256Hex: info.sha256Hex,
      };
    },
  };
}

async function rowOf(enrollmentId: string) {
  const [row] = await handle.db
    .select()
    .from(upstreamSubmissions)
    .where(eq(upstreamSubmissions.enrollmentId, enrollmentId));
  return row;
}

async function failureOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e,
  );
}

const postsSince = (before: number) => fake.count('POST', '/certificates') - before;

describe('the Atlas CA adapter against the fake Atlas', () => {
  it('submits once, polls through three 202s with a heartbeat each, and returns a certificate that verifies', async () => {
    fake.pendingRounds = 3;
    const heartbeats: unknown[] = [];
    const sleeps: number[] = [];
    const input = await inputFor('laptop-001');
    const before = fake.count('POST', '/certificates');
    const issued = await issuerWith({
      heartbeat: (d) => heartbeats.push(d),
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    }).issue(input);

    expect(postsSince(before)).toBe(1);
    expect(heartbeats).toHaveLength(3);
    expect(sleeps).toEqual([100, 100, 100]);
    expect(issued.issuingCa).toBe('atlas/atlas-fleet');
    const der = Buffer.from(issued.certificate, 'base64');
    const info = certificateInfo(der);
    expect(info.serialHex).toBe(issued.serialHex);
    expect(info.sha256Hex).toBe(issued.sha256Hex);
    expect(info.subject).toContain('CN=laptop-001');
    expect(info.subject).toContain('OU=fleet');
    expect(new Date(issued.notAfter).getTime()).toBe(Math.floor(Date.parse(input.notAfterIso) / 1000) * 1000);
    expect((await rowOf(input.enrollmentId))?.state).toBe('issued');

    const leaf = join(dir, 'leaf.pem');
    writeFileSync(leaf, `-----BEGIN CERTIFICATE-----\n${issued.certificate}\n-----END CERTIFICATE-----\n`);
    writeFileSync(join(dir, 'root.pem'), fake.chain.rootPem);
    writeFileSync(join(dir, 'issuing.pem'), fake.chain.issuingPem);
    const verify = await run('openssl', [
      'verify',
      '-CAfile',
      join(dir, 'root.pem'),
      '-untrusted',
      join(dir, 'issuing.pem'),
      '-purpose',
      'sslclient',
      leaf,
    ]);
    expect(verify.stdout).toContain(': OK');
    const text = (await run('openssl', ['x509', '-in', leaf, '-noout', '-text'])).stdout;
    expect(text).toContain('DNS:laptop-001.devices.example');
    expect(text).toContain('TLS Web Client Authentication');
  });

  it('maps a 422 to a non-retryable UpstreamPolicyViolation carrying Atlas description', async () => {
    fake.rejectCommonName = 'forbidden-device';
    const input = await inputFor('forbidden-device');
    const err = await failureOf(issuerWith().issue(input));
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('UpstreamPolicyViolation');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).message).toContain('"forbidden-device" is not permitted');
    // Nothing was created upstream: the claim is released.
    expect(await rowOf(input.enrollmentId)).toBeUndefined();
  });

  it('throws a retryable error on 503, and the retry submits and succeeds', async () => {
    const input = await inputFor('laptop-503');
    const issuer = issuerWith();
    const before = fake.count('POST', '/certificates');
    fake.failNext(1, 503);
    const err = await failureOf(issuer.issue(input));
    expect(err).not.toBeInstanceOf(ApplicationFailure);
    expect(err).toBeInstanceOf(AtlasUnavailableError);
    expect((err as AtlasUnavailableError).status).toBe(503);
    expect(await rowOf(input.enrollmentId)).toBeUndefined();

    const issued = await issuer.issue(input);
    expect(issued.issuingCa).toBe('atlas/atlas-fleet');
    expect(postsSince(before)).toBe(2);
    expect(fake.calls.filter((c) => c.method === 'POST' && c.path === '/certificates').at(-2)?.status).toBe(
      503,
    );
  });

  it('logs in again once when the access token has expired (401)', async () => {
    const issuer = issuerWith();
    await issuer.issue(await inputFor('laptop-warm'));
    const logins = fake.count('POST', '/login');
    const created = fake.certificates.size;
    fake.expireTokens();
    const before = fake.count('POST', '/certificates');
    await issuer.issue(await inputFor('laptop-401'));
    expect(fake.count('POST', '/login')).toBe(logins + 1);
    const posts = fake.calls.filter((c) => c.method === 'POST' && c.path === '/certificates').slice(-2);
    expect(posts.map((c) => c.status)).toEqual([401, 201]);
    expect(postsSince(before)).toBe(2);
    expect(fake.certificates.size).toBe(created + 1);
  });

  it('is refused by the fake without a client certificate (mTLS)', async () => {
    const before = fake.calls.length;
    const outcome = await new Promise<string>((resolve) => {
      const req = request(`${fake.baseUrl}/trustchain`, {
        ca: readFileSync(fake.files.serverCa),
        agent: false,
      });
      req.on('response', (res) => resolve(`HTTP ${res.statusCode}`));
      req.on('error', (e) => resolve(`error: ${e.message}`));
      req.end();
    });
    expect(outcome).toMatch(/^error: /);
    expect(fake.calls.length).toBe(before);

    // A client certificate from another CA is refused too, and surfaces as "unavailable" (retryable).
    const stranger = join(dir, 'stranger');
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      '/CN=stranger',
      '-days',
      '1',
      '-keyout',
      `${stranger}.key`,
      '-out',
      `${stranger}.pem`,
    ]);
    const client = new AtlasClient({
      baseUrl: fake.baseUrl,
      apiKey: ENV.ATLAS_API_KEY,
      apiSecret: ENV.ATLAS_API_SECRET,
      clientCert: readFileSync(`${stranger}.pem`),
      clientKey: readFileSync(`${stranger}.key`),
      serverCa: readFileSync(fake.files.serverCa),
    });
    await expect(client.trustchain()).rejects.toBeInstanceOf(AtlasUnavailableError);
    client.close();
    expect(fake.calls.length).toBe(before);
  });

  it('resumes polling after a crash between POST and return, never posting twice', async () => {
    fake.pendingRounds = 2;
    const input = await inputFor('laptop-crash');
    const before = fake.count('POST', '/certificates');
    // The worker "dies" while waiting between polls.
    const crashing = issuerWith({
      sleep: async () => {
        throw new Error('worker lost');
      },
    });
    await expect(crashing.issue(input)).rejects.toThrow('worker lost');
    expect((await rowOf(input.enrollmentId))?.state).toBe('submitted');

    // Atlas unavailable while the retry polls: still retryable, still no new POST.
    fake.failNext(1, 503);
    await expect(issuerWith().issue(input)).rejects.toBeInstanceOf(AtlasUnavailableError);

    const issued = await issuerWith().issue(input);
    expect(postsSince(before)).toBe(1);
    expect((await rowOf(input.enrollmentId))?.upstreamId?.toLowerCase()).toBe(issued.serialHex);

    // Completed once, "retried" again (the activity's result was lost): same certificate, no POST.
    const again = await issuerWith().issue(input);
    expect(again).toEqual(issued);
    expect(postsSince(before)).toBe(1);
  });

  it('refuses to POST again when a previous attempt left its outcome unknown', async () => {
    const input = await inputFor('laptop-unknown');
    await handle.db
      .insert(upstreamSubmissions)
      .values({ enrollmentId: input.enrollmentId, profile: profile.name, state: 'submitting' });
    const before = fake.count('POST', '/certificates');
    const err = await failureOf(issuerWith().issue(input));
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('UpstreamSubmissionUnknown');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).message).toContain('check Atlas before retrying');
    expect(postsSince(before)).toBe(0);
  });

  it('a 500 answer to the POST leaves the outcome unknown: the next attempt does not POST', async () => {
    const input = await inputFor('laptop-500');
    const before = fake.count('POST', '/certificates');
    fake.failNext(1, 500);
    const first = await failureOf(issuerWith().issue(input));
    expect(first).toBeInstanceOf(AtlasUnavailableError);
    expect((await rowOf(input.enrollmentId))?.state).toBe('submitting');
    const second = await failureOf(issuerWith().issue(input));
    expect((second as ApplicationFailure).type).toBe('UpstreamSubmissionUnknown');
    expect(postsSince(before)).toBe(1);
  });
});

describe('provisionAtlasChain', () => {
  let hsmDir: string;
  let token: HsmToken;

  beforeAll(async () => {
    hsmDir = mkdtempSync(join(tmpdir(), 'atlas-hsm-'));
    token = await HsmToken.open(
      await ensureSoftHsmToken({ dir: hsmDir, label: 'atlas-test', pin: '1234', soPin: '5678' }),
    );
  });

  afterAll(async () => {
    await token?.close();
    if (hsmDir) rmSync(hsmDir, { recursive: true, force: true });
  });

  it('stores the issuing CA and the Atlas root in the token, idempotently', async () => {
    const first = await provisionAtlasChain(token, profile, cfg, ENV);
    await provisionAtlasChain(token, profile, cfg, ENV);
    expect(issuingCertificateLabel(profile)).toBe('upstream-ca/atlas-fleet');
    const issuing = await token.certificate('upstream-ca/atlas-fleet');
    const root = await token.certificate(upstreamRootLabel(profile));
    expect(issuing && Buffer.from(issuing).equals(Buffer.from(first.issuing))).toBe(true);
    expect(certificateInfo(issuing!).subject).toBe('O=Fake GlobalSign,CN=Fake Atlas Issuing CA');
    expect(certificateInfo(root!).subject).toBe('O=Fake GlobalSign,CN=Fake Atlas Root');
    expect(certificateInfo(issuing!).isCa).toBe(true);
  });
});
