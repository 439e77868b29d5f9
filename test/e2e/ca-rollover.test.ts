/**
 * CA rollover (RFC 8894 4.7): the ceremony `scripts/ca-rollover.ts` prepares a profile's next issuing
 * CA in the HSM and starts its rotation workflow with a promotion time; GetCACaps then advertises
 * GetNextCACert, and GetNextCACert answers the next CA certificate in a certs-only PKCS#7 inside a
 * SignedData signed by the RA. Judged by OpenSSL. A profile of this file's own, so no other test
 * file sees its rollover in the shared token. (The whole rotation: test/e2e/ca-rotation.test.ts.)
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PROJECT_ROOT } from '../../config/load.js';
import { caRotationStateQuery, caRotationWorkflowId } from '../../workflows/definitions.js';
import { certificateText, certsFromPkcs7, openssl } from '../support/openssl.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { exec } from '../support/scep-clients.js';

let pipeline: Pipeline;
let work: string;
const profile = 'rollover';
const scep = () => `${pipeline.url}/scep/${profile}`;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'e2e-rollover-'));
  const base = JSON.parse(readFileSync(join(PROJECT_ROOT, 'test', 'support', 'test-pki.json'), 'utf8'));
  const template = base.profiles[0];
  base.profiles.push({
    ...template,
    name: profile,
    mdm: { type: 'static-challenge', challenge: 'test-challenge-rollover' },
    ca: {
      ...template.ca,
      keyLabel: `issuing-ca/${profile}`,
      subject: [
        ['CN', 'Device PKI Test Issuing CA (rollover)'],
        ['O', 'Device PKI Tests'],
      ],
    },
  });
  const configFile = join(work, 'pki.json');
  writeFileSync(configFile, JSON.stringify(base));
  pipeline = await startPipeline({ configFile });
});
afterAll(async () => {
  await pipeline?.stop();
});

const caps = async (name: string) =>
  (await (await fetch(`${pipeline.url}/scep/${name}?operation=GetCACaps`)).text())
    .split('\n')
    .filter(Boolean);

/** The promotion is far off: this file looks at the announcement only. */
const PROMOTE_AT = new Date(Date.now() + 7 * 86_400_000).toISOString();
const scriptEnv = () => ({
  ...process.env,
  TEMPORAL_ADDRESS: pipeline.temporalAddress,
  TEMPORAL_NAMESPACE: pipeline.client.options.namespace,
  DATABASE_URL: inject('stack').databaseUrl,
});
/** The operator's command, in its own process against the same token (as `npm run ca:rollover` runs it). */
const rollover = () =>
  exec(
    join(PROJECT_ROOT, 'node_modules', '.bin', 'tsx'),
    ['scripts/ca-rollover.ts', '--profile', profile, '--promote-at', PROMOTE_AT],
    { cwd: PROJECT_ROOT, env: scriptEnv(), timeout: 60_000 },
  );

describe('GetNextCACert', () => {
  let current: { ra: string; issuing: string; root: string };

  it('before a rollover: not advertised, and GetNextCACert is a 404 saying why', async () => {
    const response = await fetch(`${scep()}?operation=GetCACert`);
    const [ra, issuing, root] = await certsFromPkcs7(new Uint8Array(await response.arrayBuffer()), work);
    current = { ra: ra!, issuing: issuing!, root: root! };
    expect(await caps(profile)).not.toContain('GetNextCACert');
    const next = await fetch(`${scep()}?operation=GetNextCACert`);
    expect(next.status).toBe(404);
    expect(await next.text()).toMatch(/no next CA certificate/);
  });

  it('the rollover command creates the next CA in the HSM and starts the rotation, once', async () => {
    const run = await rollover();
    expect(run.code, run.output).toBe(0);
    expect(run.output).toMatch(
      /prepared: next issuing CA of profile "rollover": generation 2 \("issuing-ca\/rollover\/g2"\)/,
    );
    expect(run.output).toMatch(/rotation started: workflow ca\/rollover\/rotation/);
    const again = await rollover();
    expect(again.code, again.output).toBe(0);
    expect(again.output).toMatch(/generation 2/);
    expect(again.output).toMatch(/rotation already running/);
    // The workflow announces it and waits for the promotion time.
    const handle = pipeline.client.workflow.getHandle(caRotationWorkflowId(profile));
    const deadline = Date.now() + 30_000;
    let state = await handle.query(caRotationStateQuery);
    while (state.state !== 'Announced' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      state = await handle.query(caRotationStateQuery);
    }
    expect(state).toMatchObject({ state: 'Announced', promoteAt: PROMOTE_AT, next: { generation: 2 } });
    const unknown = await exec(
      join(PROJECT_ROOT, 'node_modules', '.bin', 'tsx'),
      ['scripts/ca-rollover.ts', '--profile', 'nope'],
      { cwd: PROJECT_ROOT, env: scriptEnv() },
    );
    expect(unknown.code).toBe(2);
  });

  it('after it: advertised (for this profile only), and answered with the next CA signed by the RA', async () => {
    expect(await caps(profile)).toEqual(expect.arrayContaining(['Renewal', 'SHA-256', 'GetNextCACert']));
    expect(await caps('devices')).not.toContain('GetNextCACert');

    const response = await fetch(`${scep()}?operation=GetNextCACert`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-x509-next-ca-cert');
    const file = join(work, 'next.p7');
    writeFileSync(file, new Uint8Array(await response.arrayBuffer()));

    // The RA's signature, with the RA's chain up to our root: OpenSSL checks both.
    const trust = join(work, 'trust.pem');
    writeFileSync(trust, `${current.issuing}\n${current.root}\n`);
    const inner = join(work, 'inner.p7');
    const signerOut = join(work, 'signer.pem');
    const verified = await openssl([
      'cms',
      '-verify',
      '-inform',
      'DER',
      '-in',
      file,
      '-CAfile',
      trust,
      '-purpose',
      'any',
      '-signer',
      signerOut,
      '-out',
      inner,
      '-binary',
    ]);
    expect(verified.code, verified.output).toBe(0);
    expect(verified.output).toMatch(/Verification successful/);
    expect(readFileSync(signerOut, 'utf8').replace(/\s/g, '')).toBe(current.ra.replace(/\s/g, ''));
    // Tampered content: refused.
    const tampered = new Uint8Array(readFileSync(file));
    const at = tampered.length - 300;
    tampered[at] = tampered[at]! ^ 0xff;
    writeFileSync(join(work, 'tampered.p7'), tampered);
    const broken = await openssl([
      'cms',
      '-verify',
      '-inform',
      'DER',
      '-in',
      join(work, 'tampered.p7'),
      '-CAfile',
      trust,
      '-purpose',
      'any',
      '-out',
      '/dev/null',
    ]);
    expect(broken.code).not.toBe(0);

    // The content: a certs-only PKCS#7 holding the next CA, issued by our root, a CA, a new key.
    const certs = await certsFromPkcs7(new Uint8Array(readFileSync(inner)), work);
    expect(certs).toHaveLength(1);
    const next = certs[0]!;
    expect(next).not.toBe(current.issuing);
    const nextFile = join(work, 'next-ca.pem');
    const rootFile = join(work, 'root.pem');
    writeFileSync(nextFile, next);
    writeFileSync(rootFile, current.root);
    const chained = await openssl(['verify', '-CAfile', rootFile, nextFile]);
    expect(chained.code, chained.output).toBe(0);
    expect(chained.output).toMatch(/next-ca\.pem: OK/);
    const text = await certificateText(next, work);
    expect(text).toMatch(/CA:TRUE/);
    expect(text).toMatch(/Subject: CN ?= ?Device PKI Test Issuing CA \(rollover\)/);
    const pubkey = async (pem: string) => {
      const f = join(work, `k-${Math.random().toString(36).slice(2)}.pem`);
      writeFileSync(f, pem);
      return (await openssl(['x509', '-in', f, '-noout', '-pubkey'])).output;
    };
    expect(await pubkey(next)).not.toBe(await pubkey(current.issuing));

    // GetCACert still serves the current CA until the promotion time.
    const still = await fetch(`${scep()}?operation=GetCACert`);
    const [, issuingNow] = await certsFromPkcs7(new Uint8Array(await still.arrayBuffer()), work);
    expect(issuingNow).toBe(current.issuing);
  });
});
