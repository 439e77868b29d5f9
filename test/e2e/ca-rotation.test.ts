/**
 * Issuing-CA rotation, the whole story on the real stack with short lifetimes (60 s certificates):
 * before, during (announced) and after promotion, micromdm scepclient and certmonger enroll and
 * renew; `openssl verify` accepts every certificate against the chain GetCACert serves at that
 * moment; a certificate of the old CA revoked after promotion is on the old CA's CRL; the old CA is
 * retired once its last certificate expired, its key deactivated then destroyed; the audit trail and
 * the events show every step. Its own profile and CA key, so no other test file sees the rotation.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, asc, desc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { profileSchema } from '../../config/profile-types.js';
import { auditEvents, caGenerations, certificates } from '../../db/schema.js';
import { ensurePkiHierarchy } from '../../hsm/provision.js';
import { fromPem, toPem } from '../../pki/pem.js';
import { startCaRotation } from '../../runtime/ca-rotation-client.js';
import {
  type CaRotationStatus,
  caRotationStateQuery,
  caRotationWorkflowId,
} from '../../workflows/definitions.js';
import { startWebhookReceiver, type WebhookReceiver } from '../fakes/webhook-receiver.js';
import { certmongerEnrollAndRenew } from '../support/certmonger-renewal.js';
import { certificateText, certsFromPkcs7, openssl, serialOf } from '../support/openssl.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { scepclientEnroll } from '../support/scep-clients.js';
import { waitForWorkflows } from '../support/temporal.js';

const PROFILE = 'rotate';
const CHALLENGE = 'rotate-challenge';
const OLD_LABEL = `issuing-ca/${PROFILE}`;
const NEW_LABEL = `issuing-ca/${PROFILE}/g2`;
const OPERATOR_TOKEN = 'rotation-operator-token';
const bearer = { authorization: `Bearer ${OPERATOR_TOKEN}`, 'content-type': 'application/json' };
const HOOK_SECRET = 'rotation-hook-secret';
const workflowId = caRotationWorkflowId(PROFILE);

let pipeline: Pipeline;
let receiver: WebhookReceiver;
let work: string;
let rootPem: string;

beforeAll(async () => {
  process.env.OPERATOR_TOKEN = OPERATOR_TOKEN;
  process.env.ROTATION_HOOK_SECRET = HOOK_SECRET;
  work = mkdtempSync(join(tmpdir(), 'e2e-rotation-'));
  receiver = await startWebhookReceiver({ secret: HOOK_SECRET });
  pipeline = await startPipeline({
    configure: (config) => {
      const base = config.profiles.find((p) => p.name === 'devices')!;
      config.profiles.splice(0, config.profiles.length, base);
      config.profiles.push(
        profileSchema.parse({
          ...base,
          name: PROFILE,
          mdm: { type: 'static-challenge', challenge: CHALLENGE },
          template: { ...base.template, validitySeconds: 60 },
          ca: {
            ...base.ca,
            keyLabel: OLD_LABEL,
            subject: [
              ['CN', 'Device PKI Test Issuing CA (rotation)'],
              ['O', 'Device PKI Tests'],
            ],
          },
          notifications: { webhooks: [{ url: receiver.url, secretEnv: 'ROTATION_HOOK_SECRET' }] },
        }),
      );
    },
  });
  rootPem = toPem(pipeline.ras.get(PROFILE)!.rootCertificate);
});
afterAll(async () => {
  await pipeline?.stop();
  await receiver?.close();
});

const scep = () => `${pipeline.url}/scep/${PROFILE}`;
let fileCount = 0;
const file = (content: string | Uint8Array, name = 'f') => {
  const path = join(work, `${name}-${++fileCount}`);
  writeFileSync(path, content);
  return path;
};

/** GetCACert right now: [RA, CA certificates...] as PEM. */
async function chainNow(): Promise<{ ra: string; cas: string[] }> {
  const response = await fetch(`${scep()}?operation=GetCACert`);
  expect(response.status).toBe(200);
  const [ra, ...cas] = await certsFromPkcs7(new Uint8Array(await response.arrayBuffer()), work);
  return { ra: ra!, cas };
}

/** `openssl verify` of a certificate against the chain GetCACert serves now (root trusted, the rest untrusted). */
async function verifyNow(certificatePem: string): Promise<{ code: number; output: string }> {
  const { cas } = await chainNow();
  const intermediates = cas.filter((c) => c !== rootPem);
  return openssl([
    'verify',
    '-CAfile',
    file(rootPem, 'root'),
    '-untrusted',
    file(intermediates.join('\n'), 'chain'),
    file(certificatePem, 'cert'),
  ]);
}

async function expectVerifiesNow(certificatePem: string) {
  const result = await verifyNow(certificatePem);
  expect(result.code, result.output).toBe(0);
  expect(result.output).toMatch(/: OK/);
}

async function issuingCaOf(certificatePem: string): Promise<string> {
  const serial = await serialOf(certificatePem, work);
  const [row] = await pipeline.db.db
    .select({ issuingCa: certificates.issuingCa })
    .from(certificates)
    .where(and(eq(certificates.profile, PROFILE), eq(certificates.serialHex, serial)));
  return row!.issuingCa;
}

/**
 * scepclient, in the directory of its first run, renews its certificate (RenewalReq signed by it, no challenge): the renewal verifies
 * against the chain GetCACert serves now and comes from `issuingCa`.
 */
async function scepclientRenews(dir: string, issuingCa: string) {
  const renewed = await scepclientEnroll({
    url: scep(),
    challenge: 'not-the-challenge',
    cn: 'rot-scepclient',
    dir,
  });
  expect(renewed.code, renewed.output).toBe(0);
  await expectVerifiesNow(renewed.certificatePem!);
  expect(await issuingCaOf(renewed.certificatePem!)).toBe(issuingCa);
  return renewed;
}

/**
 * certmonger enrolls a new device and renews it at once: both certificates verify against the
 * chain GetCACert serves now, and both come from `issuingCa`.
 */
async function certmongerEnrollsAndRenews(cn: string, issuingCa: string) {
  const cm = await certmongerEnrollAndRenew({
    url: scep(),
    cn,
    challenge: CHALLENGE,
    resubmitChallenge: 'not-the-challenge',
  });
  expect(cm.renewedState, cm.log).toBe('MONITORING');
  for (const pem of [cm.firstCertificatePem!, cm.renewedCertificatePem!]) {
    await expectVerifiesNow(pem);
    expect(await issuingCaOf(pem)).toBe(issuingCa);
  }
  return cm;
}

const rotation = () => pipeline.client.workflow.getHandle(workflowId);
async function waitForState(
  states: CaRotationStatus['state'][],
  timeoutMs = 60_000,
): Promise<CaRotationStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await rotation()
      .query(caRotationStateQuery)
      .catch(() => undefined);
    if (state && states.includes(state.state) && !state.paused) return state;
    if (Date.now() > deadline)
      throw new Error(`rotation never reached ${states.join('/')}: ${JSON.stringify(state)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** `openssl ocsp` against our responder, issuer and chain given: the answer as openssl prints it. */
async function ocspStatus(certificatePem: string, issuerPem: string): Promise<string> {
  const answer = await openssl([
    'ocsp',
    '-issuer',
    file(issuerPem, 'issuer'),
    '-cert',
    file(certificatePem, 'cert'),
    '-url',
    `${pipeline.url}/ocsp`,
    '-CAfile',
    file(`${issuerPem}\n${rootPem}\n`, 'ocsp-chain'),
  ]);
  expect(answer.output).toMatch(/Response verify OK/);
  return answer.output;
}

const caps = async () =>
  (await (await fetch(`${scep()}?operation=GetCACaps`)).text()).split('\n').filter(Boolean);

describe('issuing-CA rotation', () => {
  const before: { ra: string; issuing: string } = { ra: '', issuing: '' };
  let scepclientDir = '';
  let deviceCertificatePem = '';
  let oldCertificateToRevoke = '';

  it('before: scepclient and certmonger enroll and renew under the configured CA; no next CA announced', async () => {
    const chain = await chainNow();
    before.ra = chain.ra;
    before.issuing = chain.cas[0]!;
    expect(await caps()).not.toContain('GetNextCACert');

    const first = await scepclientEnroll({ url: scep(), challenge: CHALLENGE, cn: 'rot-scepclient' });
    expect(first.code, first.output).toBe(0);
    scepclientDir = first.dir;
    deviceCertificatePem = first.certificatePem!;
    await expectVerifiesNow(first.certificatePem!);
    expect(await issuingCaOf(first.certificatePem!)).toBe(OLD_LABEL);

    await certmongerEnrollsAndRenews('rot-certmonger-before', OLD_LABEL);
  });

  it("a forged start cannot get a device's key certified as the RA: refused before any key is made", async () => {
    const forged = await startCaRotation(pipeline.client, {
      profile: PROFILE,
      raCertificate: Buffer.from(fromPem(deviceCertificatePem)).toString('base64'),
      requestedBy: 'mallory',
    });
    expect(forged.outcome).toBe('started');
    const failure = await rotation()
      .result()
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(String((failure?.cause as Error | undefined)?.cause ?? failure?.cause)).toMatch(
      /RA certificate given for profile rotate does not name the RA/,
    );
    const rows = await pipeline.db.db.select().from(caGenerations).where(eq(caGenerations.profile, PROFILE));
    expect(rows.map((r) => [r.generation, r.state])).toEqual([[1, 'active']]);
    expect(await pipeline.tokens.get('ca').publicKey(NEW_LABEL)).toBeUndefined();
  });

  it('an operator starts the rotation: the next CA is announced, can be paused and resumed, and the old CA still issues', async () => {
    const bad = await fetch(`${pipeline.operatorUrl}/operator/cas/${PROFILE}/rotation`, {
      method: 'POST',
      headers: bearer,
      body: JSON.stringify({ promoteAt: 'tomorrow' }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/promoteAt/);

    const promoteAt = new Date(Date.now() + 35_000).toISOString();
    const started = await fetch(`${pipeline.operatorUrl}/operator/cas/${PROFILE}/rotation`, {
      method: 'POST',
      headers: bearer,
      body: JSON.stringify({ promoteAt, retentionSeconds: 3, settleSeconds: 2, by: 'alice' }),
    });
    expect(started.status, await started.clone().text()).toBe(201);
    expect(((await started.json()) as { workflowId: string }).workflowId).toBe(workflowId);
    const again = await fetch(`${pipeline.operatorUrl}/operator/cas/${PROFILE}/rotation`, {
      method: 'POST',
      headers: bearer,
      body: '{}',
    });
    expect(again.status).toBe(409);

    const announced = await waitForState(['Announced']);
    expect(announced.next).toEqual({ generation: 2, keyLabel: NEW_LABEL });
    expect(announced.previous).toEqual({ generation: 1, keyLabel: OLD_LABEL });

    // GetCACaps advertises it (the API reads CA generations through a 1 s cache); GetNextCACert
    // serves it: a new key under the same root and name.
    await expect.poll(caps, { timeout: 5000 }).toContain('GetNextCACert');
    const next = await fetch(`${scep()}?operation=GetNextCACert`);
    expect(next.status).toBe(200);
    const inner = file('', 'inner');
    const opened = await openssl([
      'cms',
      '-verify',
      '-inform',
      'DER',
      '-in',
      file(new Uint8Array(await next.arrayBuffer()), 'next'),
      '-CAfile',
      file(`${before.issuing}\n${rootPem}\n`, 'trust'),
      '-purpose',
      'any',
      '-out',
      inner,
      '-binary',
    ]);
    expect(opened.code, opened.output).toBe(0);
    const [nextCa] = await certsFromPkcs7(new Uint8Array(readFileSync(inner)), work);
    expect(nextCa).not.toBe(before.issuing);
    const chained = await openssl(['verify', '-CAfile', file(rootPem, 'root'), file(nextCa!, 'next-ca')]);
    expect(chained.code, chained.output).toBe(0);
    expect(await certificateText(nextCa!, work)).toMatch(
      /Subject: CN ?= ?Device PKI Test Issuing CA \(rotation\)/,
    );

    // Paused: the Web UI lists it by CaRotationState; resumed: back to Announced.
    const pause = await fetch(`${pipeline.operatorUrl}/operator/cas/${PROFILE}/rotation/pause`, {
      method: 'POST',
      headers: bearer,
      body: JSON.stringify({ by: 'alice', note: 'waiting for the change window' }),
    });
    expect(pause.status).toBe(202);
    await waitForWorkflows(
      pipeline.client,
      `WorkflowId="${workflowId}" AND CaRotationState="Paused"`,
      1,
      30_000,
    );
    const paused = await fetch(`${pipeline.operatorUrl}/operator/cas/${PROFILE}/rotation`, {
      headers: bearer,
    });
    expect(await paused.json()).toMatchObject({ paused: true, state: 'Announced' });
    const resume = await fetch(`${pipeline.operatorUrl}/operator/cas/${PROFILE}/rotation/resume`, {
      method: 'POST',
      headers: bearer,
      body: JSON.stringify({ by: 'alice' }),
    });
    expect(resume.status).toBe(202);
    await waitForWorkflows(
      pipeline.client,
      `WorkflowId="${workflowId}" AND CaRotationState="Announced"`,
      1,
      30_000,
    );

    // During the announcement: GetCACert unchanged, enrollments and renewals still from the old CA.
    expect(await chainNow()).toEqual({ ra: before.ra, cas: expect.arrayContaining([before.issuing]) });
    await scepclientRenews(scepclientDir, OLD_LABEL);
    const cm = await certmongerEnrollsAndRenews('rot-certmonger-during', OLD_LABEL);
    oldCertificateToRevoke = cm.renewedCertificatePem!;
    // The clients ran before the promotion time (else this test proves nothing about "during").
    expect((await rotation().query(caRotationStateQuery)).state).toBe('Announced');
  });

  it('after promotion: GetCACert serves the new CA and a re-issued RA certificate; devices move to it at their next renewal', async () => {
    await waitForState(['Promoted', 'RetiringOldCa'], 60_000);
    await expect.poll(async () => (await chainNow()).ra, { timeout: 5000 }).not.toBe(before.ra);
    const after = await chainNow();
    const raText = await certificateText(after.ra, work);
    expect(raText).toMatch(/Issuer: CN ?= ?Device PKI Test Issuing CA \(rotation\)/);
    // The old CA stays in the bundle while certificates it issued are valid.
    expect(after.cas).toContain(before.issuing);

    // scepclient renews its old-CA certificate (no challenge): issued by the new CA.
    const renewed = await scepclientRenews(scepclientDir, NEW_LABEL);
    // Its CRL distribution point is the new generation's own.
    expect(await certificateText(renewed.certificatePem!, work)).toMatch(/\/crl\/rotate\/2\.crl/);
    // And it does not chain to the old CA.
    const wrong = await openssl([
      'verify',
      '-CAfile',
      file(rootPem, 'root'),
      '-untrusted',
      file(before.issuing, 'old'),
      file(renewed.certificatePem!, 'cert'),
    ]);
    expect(wrong.code).not.toBe(0);

    await certmongerEnrollsAndRenews('rot-certmonger-after', NEW_LABEL);
    // The new CA answers OCSP (its responder certificate was made while it was announced).
    const newCa = after.cas[0]!;
    expect(newCa).not.toBe(before.issuing);
    expect(await ocspStatus(renewed.certificatePem!, newCa)).toMatch(/cert-\d+: good/);
    // The new CA's CRL is published at its own URL.
    const crl2 = await fetch(`${pipeline.url}/crl/${PROFILE}/2.crl`);
    expect(crl2.status).toBe(200);
  });

  it("a certificate of the old CA revoked after promotion is on the old CA's CRL, signed by the old CA", async () => {
    const serial = await serialOf(oldCertificateToRevoke, work);
    const revoke = await fetch(`${pipeline.operatorUrl}/operator/certificates/${serial}/revoke`, {
      method: 'POST',
      headers: bearer,
      body: JSON.stringify({ reason: 'keyCompromise', by: 'alice' }),
    });
    expect(revoke.status, await revoke.clone().text()).toBe(200);
    const response = await fetch(`${pipeline.url}/crl/${PROFILE}.crl`);
    expect(response.status).toBe(200);
    const crlPem = file('', 'crl-pem');
    const converted = await openssl([
      'crl',
      '-inform',
      'DER',
      '-in',
      file(new Uint8Array(await response.arrayBuffer()), 'crl'),
      '-out',
      crlPem,
    ]);
    expect(converted.code, converted.output).toBe(0);
    const checked = await openssl([
      'verify',
      '-crl_check',
      '-CRLfile',
      crlPem,
      '-CAfile',
      file(rootPem, 'root'),
      '-untrusted',
      file(before.issuing, 'old'),
      file(oldCertificateToRevoke, 'cert'),
    ]);
    expect(checked.code).not.toBe(0);
    expect(checked.output).toMatch(/certificate revoked/);
    // And the old CA's OCSP responder says so.
    expect(await ocspStatus(oldCertificateToRevoke, before.issuing)).toMatch(/cert-\d+: revoked/);
  });

  it('the old CA is retired when its last certificate expired: key deactivated, then destroyed; events and audit trail', async () => {
    const status = (await rotation().result()) as CaRotationStatus;
    expect(status.state).toBe('Retired');
    const generations = await pipeline.db.db
      .select()
      .from(caGenerations)
      .where(eq(caGenerations.profile, PROFILE))
      .orderBy(asc(caGenerations.generation));
    expect(generations.map((g) => [g.generation, g.keyLabel, g.state])).toEqual([
      [1, OLD_LABEL, 'destroyed'],
      [2, NEW_LABEL, 'active'],
    ]);
    const old = generations[0]!;
    // Retired only after its last certificate expired, destroyed only after the retention period.
    const [last] = await pipeline.db.db
      .select({ notAfter: certificates.notAfter })
      .from(certificates)
      .where(eq(certificates.issuingCa, OLD_LABEL))
      .orderBy(desc(certificates.notAfter))
      .limit(1);
    expect(old.deactivatedAt!.getTime()).toBeGreaterThanOrEqual(last!.notAfter.getTime());
    expect(old.deactivatedAt!.getTime()).toBeGreaterThanOrEqual(old.promotedAt?.getTime() ?? 0);
    expect(old.destroyedAt!.getTime() - old.deactivatedAt!.getTime()).toBeGreaterThanOrEqual(3000);
    const ca = pipeline.tokens.get('ca');
    expect(await ca.publicKey(OLD_LABEL)).toBeUndefined();
    expect(await ca.certificate(OLD_LABEL)).toBeUndefined();
    expect(await ca.publicKey(NEW_LABEL)).toBeDefined();
    // Provisioning at the next start does not bring a key back under the retired label.
    await ensurePkiHierarchy(pipeline.tokens, pipeline.config);
    expect(await ca.publicKey(OLD_LABEL)).toBeUndefined();

    // The old CA's final CRL is still served; GetCACert no longer carries the old CA.
    expect((await fetch(`${pipeline.url}/crl/${PROFILE}.crl`)).status).toBe(200);
    const chain = await chainNow();
    expect(chain.cas).not.toContain(before.issuing);
    const fresh = await scepclientEnroll({ url: scep(), challenge: CHALLENGE, cn: 'rot-after-retirement' });
    expect(fresh.code, fresh.output).toBe(0);
    await expectVerifiesNow(fresh.certificatePem!);

    const trail = await pipeline.db.db
      .select({ action: auditEvents.action, actor: auditEvents.actor })
      .from(auditEvents)
      .where(eq(auditEvents.subject, workflowId))
      .orderBy(asc(auditEvents.id));
    expect(trail.map((t) => t.action)).toEqual([
      'ca.generation_created',
      'ca.rotation_announced',
      'ca.rotation_paused',
      'ca.rotation_resumed',
      'ca.promoted',
      'ca.key_deactivated',
      'ca.key_destroyed',
      'ca.rotation_completed',
    ]);
    expect(trail.find((t) => t.action === 'ca.rotation_paused')!.actor).toBe('token:alice');
    expect(trail.find((t) => t.action === 'ca.generation_created')!.actor).toBe('token:alice');

    const deadline = Date.now() + 30_000;
    const types = () => receiver.deliveries.filter((d) => d.verified).map((d) => d.headers['x-pki-event']);
    while (!types().includes('ca.retired') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 250));
    expect(types()).toEqual(expect.arrayContaining(['ca.rotation_announced', 'ca.promoted', 'ca.retired']));
  }, 240_000);
});
