import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { profileSchema } from '../../config/profile-types.js';
import { certificates, devices } from '../../db/schema.js';
import { openCertRep } from '../support/certrep.js';
import { certRepAttributes, postPkiOperation } from '../support/certrep-attributes.js';
import { certsFromPkcs7, openssl, serialOf } from '../support/openssl.js';
import {
  buildPkcsReq,
  buildPkiMessage,
  makeDevice,
  openssl as opensslBytes,
} from '../support/openssl-scep.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { startRecordingProxy } from '../support/recording-proxy.js';
import { scepclientEnroll } from '../support/scep-clients.js';
import { waitForWorkflows } from '../support/temporal.js';

/**
 * Admission, attacked the way the field notes describe it: anyone who holds the SCEP URL and the
 * (static) challenge tries to take over another device's identity, or to widen a certificate.
 */
const OPERATOR_TOKEN = 'admission-operator-token';
const bearer = { authorization: `Bearer ${OPERATOR_TOKEN}`, 'content-type': 'application/json' };
let pipeline: Pipeline;
let work: string;

beforeAll(async () => {
  process.env.OPERATOR_TOKEN = OPERATOR_TOKEN;
  work = mkdtempSync(join(tmpdir(), 'e2e-admission-'));
  pipeline = await startPipeline({
    // Short: a request that waits for an operator answers PENDING after a second.
    enrollmentWaitMs: 1000,
    configure: (config) => {
      const base = config.profiles.find((p) => p.name === 'devices')!;
      config.profiles.splice(0, config.profiles.length, base);
      const variant = (name: string, change: Record<string, unknown>) =>
        profileSchema.parse({
          ...base,
          name,
          mdm: { type: 'static-challenge', challenge: `challenge-${name}` },
          ca: { ...base.ca, keyLabel: `issuing-ca/${name}`, subject: [['CN', `Issuing CA ${name}`]] },
          ...change,
        });
      config.profiles.push(
        // Refuses takeovers outright, and refuses CSRs that ask for more than the template.
        variant('strict', {
          legacyCiphers: false,
          admission: { takeover: 'refuse', readmission: 'operator' },
          template: { ...base.template, csrExtras: 'refuse' },
        }),
      );
    },
  });
});
afterAll(async () => {
  await pipeline?.stop();
});

const scep = (profile: string) => `${pipeline.url}/scep/${profile}`;
const certificatesOf = (profile: string, deviceId: string) =>
  pipeline.db.db
    .select()
    .from(certificates)
    .where(and(eq(certificates.profile, profile), eq(certificates.deviceId, deviceId)));
const lifecycleState = async (profile: string, deviceId: string) => {
  const response = await fetch(`${pipeline.operatorUrl}/operator/devices/${profile}/${deviceId}`, {
    headers: bearer,
  });
  expect(response.status).toBe(200);
  return (await response.json()) as {
    lifecycle: {
      state: {
        status: string;
        current: { serialHex: string };
        superseded: Array<{ certificate: { serialHex: string } }>;
      };
    };
    blocked: { reason: string } | null;
    certificates: Array<{ serialHex: string; status: string }>;
  };
};
const write = (name: string, content: string | Uint8Array) => {
  const path = join(work, name);
  writeFileSync(path, content);
  return path;
};
async function chainOf(profile: string) {
  const response = await fetch(`${scep(profile)}?operation=GetCACert`);
  const [ra, issuing, root] = await certsFromPkcs7(new Uint8Array(await response.arrayBuffer()), work);
  return {
    raFile: write(`${profile}-ra.pem`, ra!),
    issuingFile: write(`${profile}-issuing.pem`, issuing!),
    chainFile: write(`${profile}-chain.pem`, `${issuing}\n${root}\n`),
  };
}

describe('no silent takeover of a device identity', () => {
  it('a second key enrolling as victim-laptop with the static challenge waits for approval; the victim keeps its certificate until an operator approves', async () => {
    const victim = await scepclientEnroll({
      url: scep('devices'),
      challenge: 'test-challenge',
      cn: 'victim-laptop',
    });
    expect(victim.code, victim.output).toBe(0);
    const victimSerial = await serialOf(victim.certificatePem!, work);
    await waitForWorkflows(
      pipeline.client,
      'WorkflowId="device/devices/victim-laptop" AND PkiStatus="Active"',
      1,
    );

    // The attacker: another key, the same (leaked) challenge, the victim's name.
    const proxy = await startRecordingProxy(pipeline.url);
    const attacking = scepclientEnroll({
      url: `${proxy.url}/scep/devices`,
      challenge: 'test-challenge',
      cn: 'victim-laptop',
      timeoutMs: 120_000,
    });
    const [waiting] = await waitForWorkflows(
      pipeline.client,
      'WorkflowType="enrollment" AND DeviceId="victim-laptop" AND PkiStatus="AwaitingApproval"',
      1,
    );
    // Nothing changed for the victim: one certificate, current in its lifecycle, nothing scheduled.
    const before = await lifecycleState('devices', 'victim-laptop');
    expect(before.lifecycle.state).toMatchObject({
      status: 'Active',
      current: { serialHex: victimSerial },
      superseded: [],
    });
    expect(await certificatesOf('devices', 'victim-laptop')).toHaveLength(1);
    const queue = await fetch(`${pipeline.operatorUrl}/operator/enrollments?status=awaiting-approval`, {
      headers: bearer,
    });
    const listed = (await queue.json()) as {
      enrollments: Array<{ workflowId: string; approval: { reason: string } }>;
    };
    expect(listed.enrollments.find((e) => e.workflowId === waiting!.workflowId)?.approval.reason).toMatch(
      /already holds a valid certificate/,
    );

    // The attacker's request was answered PENDING, nothing else.
    await expect
      .poll(() => proxy.exchanges.filter((e) => e.path.includes('PKIOperation')).length, { timeout: 10_000 })
      .toBe(1);
    const pending = await certRepAttributes(
      proxy.exchanges.find((e) => e.path.includes('PKIOperation'))!.responseBody,
      work,
    );
    expect(pending.pkiStatus).toBe('3');
    // A retry signal is not an approval; then an operator approves.
    const wrong = await fetch(
      `${pipeline.operatorUrl}/operator/enrollments/${encodeURIComponent(waiting!.workflowId)}/retry`,
      { method: 'POST', headers: bearer, body: '{}' },
    );
    expect(wrong.status).toBe(409);
    const approved = await fetch(
      `${pipeline.operatorUrl}/operator/enrollments/${encodeURIComponent(waiting!.workflowId)}/approve`,
      { method: 'POST', headers: bearer, body: '{"by":"alice","note":"laptop replaced, ticket 4711"}' },
    );
    expect(approved.status).toBe(202);

    // scepclient asks again (after its 30 s pause) and gets the certificate of the same transaction.
    const attacker = await attacking;
    await proxy.close();
    expect(attacker.code, attacker.output).toBe(0);
    expect(attacker.output).toMatch(/pkiStatus=PENDING[\s\S]*pkiStatus=SUCCESS/);
    const newcomerSerial = await serialOf(attacker.certificatePem!, work);
    const after = await lifecycleState('devices', 'victim-laptop');
    expect(after.lifecycle.state.current.serialHex).toBe(newcomerSerial);
    expect(after.lifecycle.state.superseded.map((s) => s.certificate.serialHex)).toEqual([victimSerial]);
  }, 150_000);

  it('the same attack against a profile that refuses takeovers: FAILURE, nothing issued, nothing changes', async () => {
    const victim = await scepclientEnroll({
      url: scep('strict'),
      challenge: 'challenge-strict',
      cn: 'strict-victim',
    });
    // micromdm scepclient speaks only single DES, which this profile does not accept.
    expect(victim.code).not.toBe(0);
    expect(victim.output).toMatch(/failInfo: badAlg/);

    const owner = await makeDevice(work, 'strict-victim', 'challenge-strict');
    const { raFile } = await chainOf('strict');
    const first = await postPkiOperation(
      scep('strict'),
      await buildPkcsReq(owner, { dir: work, raFile, transactionId: 'strict-victim-1', cipher: 'aes256' }),
      work,
    );
    expect(first.attributes).toMatchObject({ pkiStatus: '0' });
    const attacker = await makeDevice(work, 'strict-victim', 'challenge-strict');
    const takeover = await postPkiOperation(
      scep('strict'),
      await buildPkcsReq(attacker, {
        dir: work,
        raFile,
        transactionId: 'strict-attacker-1',
        cipher: 'aes256',
      }),
      work,
    );
    expect(takeover.attributes).toMatchObject({ pkiStatus: '2', failInfo: '2' });
    expect(await certificatesOf('strict', 'strict-victim')).toHaveLength(1);
  }, 120_000);
});

describe('the certificate follows the template, never the CSR', () => {
  const greedy = {
    subject: ['O = Evil Corp', 'OU = Domain Admins'],
    san: ['DNS:vpn.example.com', 'email:ceo@example.com'],
    ca: true,
  };

  it('drops another O, extra SANs and a CA request: openssl shows exactly the template', async () => {
    const device = await makeDevice(work, 'greedy-laptop', 'test-challenge', greedy);
    const { raFile, chainFile } = await chainOf('devices');
    const reply = await postPkiOperation(
      scep('devices'),
      await buildPkcsReq(device, { dir: work, raFile, transactionId: 'greedy-1' }),
      work,
    );
    expect(reply.attributes).toMatchObject({ pkiStatus: '0' });
    const [issued] = await openCertRep(
      reply.body!,
      { keyPem: readFileSync(device.keyFile, 'utf8'), certificatePem: readFileSync(device.certFile, 'utf8') },
      work,
    );
    const certFile = write('greedy.pem', issued!);
    const text = (
      await openssl([
        'x509',
        '-in',
        certFile,
        '-noout',
        '-subject',
        '-ext',
        'basicConstraints,subjectAltName',
      ])
    ).output;
    expect(text).toMatch(/^subject=CN = greedy-laptop, O = Device PKI Tests$/m);
    expect(text).toMatch(/CA:FALSE/);
    expect(text).not.toMatch(/Evil Corp|Domain Admins|vpn\.example\.com|ceo@example\.com/);
    expect((await openssl(['verify', '-CAfile', chainFile, certFile])).code).toBe(0);
  }, 60_000);

  it('refuses the same CSR with FAILURE badRequest where the profile says refuse, and records why', async () => {
    const device = await makeDevice(work, 'greedy-strict', 'challenge-strict', greedy);
    const { raFile } = await chainOf('strict');
    const reply = await postPkiOperation(
      scep('strict'),
      await buildPkcsReq(device, { dir: work, raFile, transactionId: 'greedy-strict-1' }),
      work,
    );
    expect(reply.attributes).toMatchObject({ pkiStatus: '2', failInfo: '2' });
    expect(await certificatesOf('strict', 'greedy-strict')).toHaveLength(0);
    const [workflow] = await waitForWorkflows(
      pipeline.client,
      'WorkflowId="enroll/strict/greedy-strict-1" AND PkiStatus="Failed"',
      1,
    );
    const result = await pipeline.client.workflow.getHandle(workflow!.workflowId).result();
    expect(result.outcome).toMatchObject({
      status: 'FAILURE',
      reason: expect.stringMatching(/subject O=Evil Corp.*SAN dns:vpn\.example\.com.*a CA certificate/),
    });
  }, 60_000);

  it('refuses single-DES envelopes on a profile without legacyCiphers (badAlg)', async () => {
    const device = await makeDevice(work, 'des-laptop', 'challenge-strict');
    const { raFile } = await chainOf('strict');
    const reply = await postPkiOperation(
      scep('strict'),
      await buildPkcsReq(device, { dir: work, raFile, transactionId: 'des-1', cipher: 'des' }),
      work,
    );
    expect(reply.attributes).toMatchObject({ pkiStatus: '2', failInfo: '0' });
  }, 60_000);
});

describe('revocation covers the device', () => {
  it('revokes the current and the superseded-in-grace certificate; neither renews; readmit lets it enroll again', async () => {
    const first = await scepclientEnroll({
      url: scep('devices'),
      challenge: 'test-challenge',
      cn: 'revoked-laptop',
    });
    expect(first.code, first.output).toBe(0);
    await waitForWorkflows(
      pipeline.client,
      'WorkflowId="device/devices/revoked-laptop" AND PkiStatus="Active"',
      1,
    );
    const oldPem = first.certificatePem!;
    const oldKey = readFileSync(join(first.dir, 'key.pem'), 'utf8');
    // scepclient run again in its directory renews: the first certificate is superseded, in grace.
    const renewed = await scepclientEnroll({
      url: scep('devices'),
      challenge: 'test-challenge',
      cn: 'revoked-laptop',
      dir: first.dir,
    });
    expect(renewed.code, renewed.output).toBe(0);
    const serials = [await serialOf(oldPem, work), await serialOf(renewed.certificatePem!, work)];
    await expect
      .poll(
        async () => (await lifecycleState('devices', 'revoked-laptop')).lifecycle.state.superseded.length,
        { timeout: 20_000 },
      )
      .toBe(1);

    const revoke = await fetch(`${pipeline.operatorUrl}/operator/devices/devices/revoked-laptop/revoke`, {
      method: 'POST',
      headers: bearer,
      body: '{"reason":"keyCompromise","by":"alice"}',
    });
    expect(revoke.status).toBe(202);
    await waitForWorkflows(
      pipeline.client,
      'WorkflowId="device/devices/revoked-laptop" AND PkiStatus="Revoked"',
      1,
    );
    expect((await certificatesOf('devices', 'revoked-laptop')).map((c) => c.status)).toEqual([
      'revoked',
      'revoked',
    ]);

    const { issuingFile, chainFile } = await chainOf('devices');
    const crl = await fetch(`${pipeline.url}/crl/devices.crl`);
    const crlText = (
      await openssl([
        'crl',
        '-inform',
        'DER',
        '-noout',
        '-text',
        '-in',
        write('devices.crl', new Uint8Array(await crl.arrayBuffer())),
      ])
    ).output.toLowerCase();
    for (const [i, pem] of [oldPem, renewed.certificatePem!].entries()) {
      expect(crlText).toContain(serials[i]!.toLowerCase());
      const ocsp = await openssl([
        'ocsp',
        '-issuer',
        issuingFile,
        '-cert',
        write(`rev-${i}.pem`, pem),
        '-url',
        `${pipeline.url}/ocsp`,
        '-CAfile',
        chainFile,
      ]);
      expect(ocsp.output).toMatch(/: revoked/);
    }

    // A renewal signed by either certificate is refused; the device is blocked.
    const { raFile } = await chainOf('devices');
    for (const [i, pem] of [oldPem, renewed.certificatePem!].entries()) {
      const signer = {
        keyFile: write(`rev-key-${i}.pem`, oldKey),
        certDer: new Uint8Array(
          await opensslBytes(['x509', '-in', write(`rev-signer-${i}.pem`, pem), '-outform', 'DER']),
        ),
      };
      const csr = await makeDevice(work, 'revoked-laptop');
      const reply = await postPkiOperation(
        scep('devices'),
        (
          await buildPkiMessage({
            dir: work,
            recipients: [raFile],
            signer,
            cipher: 'aes256',
            digest: 'sha256',
            messageType: 17,
            transactionId: `revoked-renewal-${i}`,
            content: csr.csrDer,
          })
        ).der,
        work,
      );
      expect(reply.attributes).toMatchObject({ pkiStatus: '2', failInfo: '2' });
    }
    // A fresh enrollment (static challenge, new key) is refused too until an operator readmits it.
    const refused = await scepclientEnroll({
      url: scep('devices'),
      challenge: 'test-challenge',
      cn: 'revoked-laptop',
    });
    expect(refused.code).not.toBe(0);
    const [row] = await pipeline.db.db
      .select()
      .from(devices)
      .where(and(eq(devices.profile, 'devices'), eq(devices.deviceId, 'revoked-laptop')));
    expect(row?.blockedReason).toBe('revoked (keyCompromise)');

    const readmit = await fetch(`${pipeline.operatorUrl}/operator/devices/devices/revoked-laptop/readmit`, {
      method: 'POST',
      headers: bearer,
      body: '{"by":"alice"}',
    });
    expect(readmit.status).toBe(202);
    await expect
      .poll(async () => (await lifecycleState('devices', 'revoked-laptop')).blocked, { timeout: 20_000 })
      .toBeNull();
    const again = await scepclientEnroll({
      url: scep('devices'),
      challenge: 'test-challenge',
      cn: 'revoked-laptop',
    });
    expect(again.code, again.output).toBe(0);
    await waitForWorkflows(
      pipeline.client,
      'WorkflowId="device/devices/revoked-laptop" AND PkiStatus="Active"',
      1,
    );
  }, 180_000);
});
