/**
 * Real clients against two profiles under one root (devices, laptops: each its own issuing CA), and
 * renewal by the real clients: micromdm scepclient (RenewalReq signed by its issued certificate) and
 * certmonger (`getcert resubmit`).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificates } from '../../db/schema.js';
import { deviceStateQuery, deviceWorkflowId } from '../../workflows/definitions.js';
import { certmongerEnroll } from '../support/certmonger.js';
import { certmongerEnrollAndRenew } from '../support/certmonger-renewal.js';
import { certsFromPkcs7, openssl, serialOf } from '../support/openssl.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { startRecordingProxy } from '../support/recording-proxy.js';
import { scepclientEnroll } from '../support/scep-clients.js';
import { until } from '../support/until.js';

// Many real-client runs from 127.0.0.1 in one file: the per-IP limit is scep-limits.test.ts's business.
process.env.SCEP_RATE_PER_MINUTE = '0';

let pipeline: Pipeline;
let work: string;
const PROFILES = { devices: 'test-challenge', laptops: 'test-challenge-laptops' } as const;
type ProfileName = keyof typeof PROFILES;
const chains = {} as Record<ProfileName, { ra: string; issuing: string; root: string; chainFile: string }>;

beforeAll(async () => {
  pipeline = await startPipeline({
    configure: (config) => {
      for (const p of config.profiles) p.lifecycle.supersededGraceSeconds = 3;
    },
  });
  work = mkdtempSync(join(tmpdir(), 'e2e-interop-'));
  for (const profile of Object.keys(PROFILES) as ProfileName[]) {
    const response = await fetch(`${pipeline.url}/scep/${profile}?operation=GetCACert`);
    expect(response.status).toBe(200);
    const [ra, issuing, root] = await certsFromPkcs7(new Uint8Array(await response.arrayBuffer()), work);
    const chainFile = join(work, `${profile}-chain.pem`);
    writeFileSync(chainFile, `${issuing}\n${root}\n`);
    chains[profile] = { ra: ra!, issuing: issuing!, root: root!, chainFile };
  }
});
afterAll(async () => {
  await pipeline?.stop();
});

const other = (profile: ProfileName): ProfileName => (profile === 'devices' ? 'laptops' : 'devices');

/** openssl verify against the profile's own GetCACert chain: OK; against the other profile's: refused. */
async function expectIssuedUnder(profile: ProfileName, certificatePem: string) {
  const file = join(work, `leaf-${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(file, certificatePem);
  const right = await openssl(['verify', '-CAfile', chains[profile].chainFile, file]);
  expect(right.code, right.output).toBe(0);
  expect(right.output).toMatch(/: OK/);
  const wrong = await openssl(['verify', '-CAfile', chains[other(profile)].chainFile, file]);
  expect(wrong.code, wrong.output).not.toBe(0);
  // Only the other intermediate and the shared root to build with: the issuer is not there.
  const rootOnly = join(work, `root-${profile}.pem`);
  writeFileSync(rootOnly, chains[profile].root);
  const otherIntermediate = join(work, `other-intermediate-${profile}.pem`);
  writeFileSync(otherIntermediate, chains[other(profile)].issuing);
  const viaOther = await openssl(['verify', '-CAfile', rootOnly, '-untrusted', otherIntermediate, file]);
  expect(viaOther.code, viaOther.output).not.toBe(0);
  expect(viaOther.output).toMatch(/unable to get local issuer certificate/);
}

describe('two profiles, two intermediates, one root', () => {
  it('the two GetCACert chains have different intermediates under the same root', () => {
    expect(chains.devices.issuing).not.toBe(chains.laptops.issuing);
    expect(chains.devices.root).toBe(chains.laptops.root);
  });

  it('GetCACaps of each profile advertises what iOS and the clients need, no GetNextCACert', async () => {
    for (const profile of Object.keys(PROFILES)) {
      const response = await fetch(`${pipeline.url}/scep/${profile}?operation=GetCACaps`);
      expect(response.status).toBe(200);
      const caps = (await response.text()).split('\n').filter(Boolean);
      expect(caps).toEqual(
        expect.arrayContaining([
          'POSTPKIOperation',
          'AES',
          'DES3',
          'SHA-256',
          'SHA-512',
          'SCEPStandard',
          'Renewal',
        ]),
      );
      expect(caps).not.toContain('GetNextCACert');
    }
  });

  it('an unknown profile is a 404 for every operation', async () => {
    for (const operation of ['GetCACaps', 'GetCACert', 'GetNextCACert', 'PKIOperation']) {
      const response = await fetch(`${pipeline.url}/scep/nope?operation=${operation}`);
      expect(response.status).toBe(404);
      expect(await response.text()).toMatch(/unknown SCEP profile nope/);
    }
  });

  for (const profile of Object.keys(PROFILES) as ProfileName[]) {
    it(`micromdm scepclient enrolls on /scep/${profile}; the certificate chains to ${profile}'s CA only`, async () => {
      const run = await scepclientEnroll({
        url: `${pipeline.url}/scep/${profile}`,
        challenge: PROFILES[profile],
        cn: `interop-scepclient-${profile}`,
      });
      expect(run.code, run.output).toBe(0);
      await expectIssuedUnder(profile, run.certificatePem!);
    });

    it(`certmonger enrolls (GET) on /scep/${profile}; the certificate chains to ${profile}'s CA only`, async () => {
      const run = await certmongerEnroll({
        url: `${pipeline.url}/scep/${profile}`,
        challenge: PROFILES[profile],
        cn: `interop-certmonger-${profile}`,
      });
      expect(run.state, run.log).toBe('MONITORING');
      await expectIssuedUnder(profile, run.certificatePem!);
    });
  }

  it("a profile's challenge does not open the other profile", async () => {
    const run = await scepclientEnroll({
      url: `${pipeline.url}/scep/laptops`,
      challenge: PROFILES.devices,
      cn: 'interop-cross-challenge',
    });
    expect(run.code).not.toBe(0);
    expect(run.certificatePem).toBeUndefined();
  });
});

const certificateRow = async (profile: string, serialHex: string) => {
  const [row] = await pipeline.db.db
    .select()
    .from(certificates)
    .where(and(eq(certificates.profile, profile), eq(certificates.serialHex, serialHex)));
  return row;
};

/**
 * Certificate times have one-second resolution, and the device lifecycle only adopts a certificate
 * whose notAfter is strictly later than the current one's (workflows/device-lifecycle.ts adopt()):
 * a renewal within the same second as the first issuance would be ignored. Real renewals come much
 * later; the tests wait for the next second.
 */
const notAfterTicks = () => new Promise((r) => setTimeout(r, 1100));

/** The lifecycle moved to `serialHex`, and `oldSerial` gets revoked (superseded) after the 3 s grace. */
async function expectSuperseded(profile: ProfileName, cn: string, oldSerial: string, newSerial: string) {
  const handle = pipeline.client.workflow.getHandle(deviceWorkflowId(profile, cn));
  const state = await until('the lifecycle to hold the renewed certificate', async () => {
    const s = await handle.query(deviceStateQuery);
    return s.current?.serialHex === newSerial ? s : undefined;
  }).catch(async (err) => {
    throw new Error(
      `${err.message}: ${JSON.stringify(await handle.query(deviceStateQuery))} want ${newSerial}`,
    );
  });
  expect(state.status).toBe('Active');
  expect(state.superseded.map((s) => s.certificate.serialHex)).toContain(oldSerial);
  // Still valid within the grace period (3 s from the renewal).
  expect((await certificateRow(profile, oldSerial))?.status).toBe('valid');
  const revoked = await until('the superseded certificate to be revoked', async () => {
    const row = await certificateRow(profile, oldSerial);
    return row?.status === 'revoked' ? row : undefined;
  });
  expect(revoked.revocationReason).toBe('superseded');
  expect((await certificateRow(profile, newSerial))?.status).toBe('valid');
  const after = await until('the lifecycle to drop the revoked certificate', async () => {
    const s = await handle.query(deviceStateQuery);
    return s.superseded.length === 0 ? s : undefined;
  });
  expect(after.current?.serialHex).toBe(newSerial);
}

describe('renewal by real clients', () => {
  it('micromdm scepclient run again with its issued certificate sends a RenewalReq signed by it and gets a new certificate, no challenge needed', async () => {
    const cn = 'interop-renew-scepclient';
    const first = await scepclientEnroll({
      url: `${pipeline.url}/scep/laptops`,
      challenge: PROFILES.laptops,
      cn,
    });
    expect(first.code, first.output).toBe(0);
    const oldSerial = await serialOf(first.certificatePem!, work);
    await notAfterTicks();

    // Same directory: scepclient finds cert.pem (and its key and csr.pem) and renews with them.
    const proxy = await startRecordingProxy(pipeline.url);
    let second: Awaited<ReturnType<typeof scepclientEnroll>>;
    try {
      second = await scepclientEnroll({
        url: `${proxy.url}/scep/laptops`,
        challenge: 'not-the-challenge',
        cn,
        dir: first.dir,
      });
    } finally {
      await proxy.close();
    }
    expect(second.code, second.output).toBe(0);
    const newSerial = await serialOf(second.certificatePem!, work);
    expect(newSerial).not.toBe(oldSerial);
    await expectIssuedUnder('laptops', second.certificatePem!);

    // What scepclient actually sent, read by OpenSSL: RenewalReq (17), signed by the first certificate.
    const request = proxy.exchanges.find((e) => e.path.includes('PKIOperation'))!;
    const requestFile = join(work, 'scepclient-renewal.der');
    writeFileSync(requestFile, request.requestBody);
    const printed = await openssl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', requestFile]);
    expect(printed.output).toMatch(/2\.16\.840\.1\.113733\.1\.9\.2\)[\s\S]*?PRINTABLESTRING:17/);
    const [signer] = await certsFromPkcs7(request.requestBody, work);
    expect(await serialOf(signer!, work)).toBe(oldSerial);
    // Same key, same CSR file: the transactionID (a hash of the key) repeats the first request's.
    const subjects = /subject: (.*)/.exec(printed.output)?.[1];
    expect(subjects).toMatch(new RegExp(`CN ?= ?${cn}`));

    const renewed = await certificateRow('laptops', newSerial);
    expect(renewed).toMatchObject({ deviceId: cn, status: 'valid' });
    expect(renewed!.enrollmentId).toMatch(/~renewal-/);
    await expectSuperseded('laptops', cn, oldSerial, newSerial);
  });

  it('certmonger renews with `getcert resubmit` (wrong challenge): a new certificate, the old one superseded', async () => {
    const cn = 'interop-renew-certmonger';
    const run = await certmongerEnrollAndRenew({
      url: `${pipeline.url}/scep/devices`,
      cn,
      challenge: PROFILES.devices,
      resubmitChallenge: 'not-the-challenge',
    });
    expect(run.firstState, run.log).toBe('MONITORING');
    expect(run.renewedState, run.log).toBe('MONITORING');
    const oldSerial = await serialOf(run.firstCertificatePem!, work);
    const newSerial = await serialOf(run.renewedCertificatePem!, work);
    expect(newSerial, run.log).not.toBe(oldSerial);
    await expectIssuedUnder('devices', run.renewedCertificatePem!);
    const renewed = await certificateRow('devices', newSerial);
    expect(renewed).toMatchObject({ deviceId: cn, status: 'valid' });
    // The renewal path (signed by the first certificate), not a second enrollment.
    expect(renewed!.enrollmentId).toMatch(/~renewal-/);
    expect(readFileSync(join(run.dir, 'getcert.log'), 'utf8')).toMatch(/MONITORING/);
    await expectSuperseded('devices', cn, oldSerial, newSerial);
  });
});
