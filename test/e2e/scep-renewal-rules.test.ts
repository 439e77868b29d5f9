/**
 * Renewal refusals, transaction rules and nonces, with messages from the independent builder
 * (test/support/openssl-scep.ts) and CertReps read by OpenSSL (test/support/certrep-attributes.ts);
 * then all of it fired at once, interleaved with real scepclient enrollments.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeIssued } from '../../activities/ca/issued-certificates.js';
import { createHsmActivities } from '../../activities/index.js';
import { certificates, enrollments } from '../../db/schema.js';
import { loadProfileChain } from '../../hsm/provision.js';
import { buildCertificate, certificateInfo } from '../../pki/x509/certificate.js';
import { encodeName } from '../../pki/x509/name.js';
import { postPkiOperation } from '../support/certrep-attributes.js';
import { certsFromPkcs7, openssl as judge, serialOf } from '../support/openssl.js';
import { buildPkiMessage, makeDevice, openssl } from '../support/openssl-scep.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { scepclientEnroll } from '../support/scep-clients.js';

// Many requests from 127.0.0.1 in one file: the per-IP limit is scep-limits.test.ts's business.
process.env.SCEP_RATE_PER_MINUTE = '0';

let pipeline: Pipeline;
let work: string;
let raFile: string;
let chainFile: string;
const challenge = 'test-challenge';
const FAIL = { badRequest: '2', badTime: '3', badCertId: '4' } as const;
const scepUrl = () => `${pipeline.url}/scep/devices`;

beforeAll(async () => {
  pipeline = await startPipeline();
  work = mkdtempSync(join(tmpdir(), 'e2e-renewal-rules-'));
  const response = await fetch(`${scepUrl()}?operation=GetCACert`);
  const [ra, issuing, root] = await certsFromPkcs7(new Uint8Array(await response.arrayBuffer()), work);
  raFile = join(work, 'ra.pem');
  writeFileSync(raFile, ra!);
  chainFile = join(work, 'chain.pem');
  writeFileSync(chainFile, `${issuing}\n${root}\n`);
});
afterAll(async () => {
  await pipeline?.stop();
});

interface Signer {
  keyFile: string;
  certDer: Uint8Array;
}

let tidCounter = 0;
const newTid = (name: string) => `${name}-${process.pid}-${++tidCounter}`;

/** A PKCS#10 for CN=<cn> with an existing key (openssl req). */
async function csrFor(keyFile: string, cn: string): Promise<Uint8Array> {
  const out = join(work, `csr-${cn}-${++tidCounter}.der`);
  await openssl(['req', '-new', '-key', keyFile, '-subj', `/CN=${cn}`, '-outform', 'DER', '-out', out]);
  return new Uint8Array(readFileSync(out));
}

/** A device certificate of ours from scepclient: its key file and the certificate (DER). */
async function enrolled(cn: string): Promise<Signer & { serialHex: string; pem: string }> {
  const run = await scepclientEnroll({ url: scepUrl(), challenge, cn });
  expect(run.code, run.output).toBe(0);
  const certDer = await openssl(['x509', '-in', join(run.dir, 'cert.pem'), '-outform', 'DER']);
  return {
    keyFile: join(run.dir, 'key.pem'),
    certDer: new Uint8Array(certDer),
    serialHex: await serialOf(run.certificatePem!, work),
    pem: run.certificatePem!,
  };
}

function message(opts: {
  signer: Signer;
  csr: Uint8Array;
  messageType?: 17 | 19;
  transactionId?: string;
  senderNonce?: Uint8Array;
}) {
  return buildPkiMessage({
    dir: work,
    recipients: [raFile],
    signer: opts.signer,
    cipher: 'aes256',
    digest: 'sha256',
    messageType: opts.messageType ?? 17,
    transactionId: opts.transactionId ?? newTid('renew'),
    senderNonce: opts.senderNonce,
    content: opts.csr,
  });
}

/** A certificate of ours (issued by the devices CA key in the HSM, stored like any other) with chosen validity. */
async function ourCertificate(cn: string, notBefore: Date, notAfter: Date): Promise<Signer> {
  const device = await makeDevice(work, cn);
  const { issuing } = await loadProfileChain(pipeline.tokens.get('ra'), pipeline.config, 'devices');
  const keyLabel = 'issuing-ca/devices';
  const der = await buildCertificate({
    serialNumber: Uint8Array.from([0x11, ...randomBytes(15)]),
    subject: encodeName([['CN', cn]]),
    subjectPublicKeyInfo: certificateInfo(device.certDer).subjectPublicKeyInfo,
    notBefore,
    notAfter,
    issuer: { kind: 'ca', certificate: issuing, signer: await pipeline.tokens.get('ca').signer(keyLabel) },
    extensions: {
      keyUsages: ['digitalSignature', 'keyEncipherment'],
      extendedKeyUsages: ['1.3.6.1.5.5.7.3.2'],
    },
  });
  const _info = certificateInfo(der);
  await storeIssued(pipeline.db.db, {
    enrollmentId: `test/${cn}`,
    profile: 'devices',
    deviceId: cn,
    identity: { deviceId: cn, vouchedBy: null, attributes: { id: cn, commonName: cn } },
    der,
    issuingCa: keyLabel,
  });
  return { keyFile: device.keyFile, certDer: der };
}

/** A CA of nobody's (openssl req -x509) and a device certificate it issued: not ours, not self-signed. */
async function foreignCertificate(cn: string): Promise<Signer> {
  const caKey = join(work, `foreign-ca-${cn}.key`);
  const caCert = join(work, `foreign-ca-${cn}.pem`);
  await openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=Foreign CA',
    '-days',
    '2',
    '-keyout',
    caKey,
    '-out',
    caCert,
  ]);
  const device = await makeDevice(work, cn);
  const csrDer = join(work, `foreign-${cn}.csr`);
  writeFileSync(csrDer, device.csrDer);
  const cert = join(work, `foreign-${cn}.pem`);
  await openssl([
    'x509',
    '-req',
    '-inform',
    'DER',
    '-in',
    csrDer,
    '-CA',
    caCert,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-days',
    '1',
    '-out',
    cert,
  ]);
  return {
    keyFile: device.keyFile,
    certDer: new Uint8Array(await openssl(['x509', '-in', cert, '-outform', 'DER'])),
  };
}

const rowsOf = (deviceId: string) =>
  pipeline.db.db.select().from(certificates).where(eq(certificates.deviceId, deviceId));

describe('renewal signer checks (RenewalReq, and PKCSReq signed by an issued certificate)', () => {
  it("control: a RenewalReq signed by the device's own valid certificate gets a new certificate without the challenge", async () => {
    const ours = await enrolled('rules-ok');
    const reply = await postPkiOperation(
      scepUrl(),
      (await message({ signer: ours, csr: await csrFor(ours.keyFile, 'rules-ok') })).der,
      work,
    );
    expect(reply.attributes).toMatchObject({ messageType: '3', pkiStatus: '0' });
    expect(await rowsOf('rules-ok')).toHaveLength(2);
    // Who decided the identity is recorded (pki_enrollments_total counts by it): the signer, not the MDM.
    const decidedBy = await pipeline.db.db
      .select({ verifier: enrollments.verifier })
      .from(enrollments)
      .where(eq(enrollments.deviceId, 'rules-ok'));
    expect(decidedBy.map((r) => r.verifier).sort()).toEqual(['renewal-signer', 'static-challenge']);
  });

  it("signed by device A's certificate, asking for device B: A's identity is kept, B gets nothing; the superseded signer then renews no more", async () => {
    const a = await enrolled('rules-device-a');
    const b = await makeDevice(work, 'rules-device-b');
    const first = await postPkiOperation(
      scepUrl(),
      (await message({ signer: a, csr: b.csrDer, messageType: 17 })).der,
      work,
    );
    expect(first.attributes).toMatchObject({ pkiStatus: '0' });
    expect(await rowsOf('rules-device-b')).toHaveLength(0);
    const issued = (await rowsOf('rules-device-a')).map((r) => r.subject);
    expect(issued).toHaveLength(2);
    expect(issued.every((subject) => subject.startsWith('CN=rules-device-a'))).toBe(true);
    // A's first certificate is superseded now: it renews nothing, even inside its grace period.
    const second = await postPkiOperation(
      scepUrl(),
      (await message({ signer: a, csr: b.csrDer, messageType: 19 })).der,
      work,
    );
    expect(second.attributes).toMatchObject({ pkiStatus: '2', failInfo: FAIL.badRequest });
    expect(await rowsOf('rules-device-a')).toHaveLength(2);
  });

  it('signed by a foreign certificate (another CA, not self-signed) → FAILURE badCertId', async () => {
    const foreign = await foreignCertificate('rules-foreign');
    for (const messageType of [17, 19] as const) {
      const csr = await csrFor(foreign.keyFile, 'rules-foreign');
      const reply = await postPkiOperation(
        scepUrl(),
        (await message({ signer: foreign, csr, messageType })).der,
        work,
      );
      expect(reply.attributes).toMatchObject({ pkiStatus: '2', failInfo: FAIL.badCertId });
    }
    expect(await rowsOf('rules-foreign')).toHaveLength(0);
  });

  it('signed by a revoked certificate of ours → FAILURE badRequest', async () => {
    const revoked = await enrolled('rules-revoked');
    const [row] = await rowsOf('rules-revoked');
    await createHsmActivities({
      db: pipeline.db.db,
      token: pipeline.tokens.get('ca'),
      config: pipeline.config,
    }).revokeCertificate({
      issuingCa: row!.issuingCa,
      serialHex: revoked.serialHex,
      reason: 'keyCompromise',
      revokedAt: new Date().toISOString(),
      actor: 'operator:e2e',
    });
    const reply = await postPkiOperation(
      scepUrl(),
      (await message({ signer: revoked, csr: await csrFor(revoked.keyFile, 'rules-revoked') })).der,
      work,
    );
    expect(reply.attributes).toMatchObject({ pkiStatus: '2', failInfo: FAIL.badRequest });
    expect(await rowsOf('rules-revoked')).toHaveLength(1);
  });

  it('signed by an expired, or a not-yet-valid, certificate of ours → FAILURE badTime', async () => {
    const day = 86_400_000;
    const now = Date.now();
    const expired = await ourCertificate('rules-expired', new Date(now - 2 * day), new Date(now - day));
    const future = await ourCertificate('rules-future', new Date(now + day), new Date(now + 2 * day));
    for (const [cn, signer] of [
      ['rules-expired', expired],
      ['rules-future', future],
    ] as const) {
      const reply = await postPkiOperation(
        scepUrl(),
        (await message({ signer, csr: await csrFor(signer.keyFile, cn) })).der,
        work,
      );
      expect(reply.attributes, cn).toMatchObject({ pkiStatus: '2', failInfo: FAIL.badTime });
      expect(await rowsOf(cn)).toHaveLength(1);
    }
  });
});

describe('transaction rules and nonces', () => {
  it('same transactionID with another CSR, or the same CSR from another signer key → badRequest; one certificate', async () => {
    const first = await makeDevice(work, 'rules-tx', challenge);
    const tid = newTid('tx');
    const senderNonce = new Uint8Array(randomBytes(16));
    const sent = await message({
      signer: { keyFile: first.keyFile, certDer: first.certDer },
      csr: first.csrDer,
      messageType: 19,
      transactionId: tid,
      senderNonce,
    });
    const ok = await postPkiOperation(scepUrl(), sent.der, work);
    expect(ok.attributes).toMatchObject({ messageType: '3', pkiStatus: '0', transactionId: tid });
    // Nonces, as OpenSSL prints them: ours echoed as recipientNonce, a fresh senderNonce of our own.
    expect(ok.attributes!.recipientNonceHex).toBe(Buffer.from(senderNonce).toString('hex'));
    expect(ok.attributes!.senderNonceHex).toMatch(/^[0-9a-f]{32}$/);
    expect(ok.attributes!.senderNonceHex).not.toBe(ok.attributes!.recipientNonceHex);

    // The very same message again: the same transaction answers, with a new senderNonce.
    const resent = await postPkiOperation(scepUrl(), sent.der, work);
    expect(resent.attributes).toMatchObject({
      pkiStatus: '0',
      recipientNonceHex: ok.attributes!.recipientNonceHex,
    });
    expect(resent.attributes!.senderNonceHex).not.toBe(ok.attributes!.senderNonceHex);

    const otherKey = await makeDevice(work, 'rules-tx', challenge);
    const anotherCsr = await message({
      signer: { keyFile: first.keyFile, certDer: first.certDer },
      csr: otherKey.csrDer,
      messageType: 19,
      transactionId: tid,
    });
    const refusedCsr = await postPkiOperation(scepUrl(), anotherCsr.der, work);
    expect(refusedCsr.attributes).toMatchObject({
      pkiStatus: '2',
      failInfo: FAIL.badRequest,
      transactionId: tid,
    });
    expect(refusedCsr.attributes!.recipientNonceHex).toBe(
      Buffer.from(anotherCsr.senderNonce).toString('hex'),
    );

    const anotherSigner = await message({
      signer: { keyFile: otherKey.keyFile, certDer: otherKey.certDer },
      csr: first.csrDer,
      messageType: 19,
      transactionId: tid,
    });
    const refusedSigner = await postPkiOperation(scepUrl(), anotherSigner.der, work);
    expect(refusedSigner.attributes).toMatchObject({
      pkiStatus: '2',
      failInfo: FAIL.badRequest,
      transactionId: tid,
    });

    expect(await rowsOf('rules-tx')).toHaveLength(1);
  });
});

describe('the service under a mixed burst', () => {
  it('answers every bad request with a 4xx or a signed FAILURE while every valid enrollment gets its certificate', async () => {
    // burst-owner renews once: its first certificate is superseded and must renew nothing more.
    const supersededSigner = await enrolled('burst-owner');
    const renewal = await postPkiOperation(
      scepUrl(),
      (
        await message({
          signer: supersededSigner,
          csr: await csrFor(supersededSigner.keyFile, 'burst-owner'),
          messageType: 17,
        })
      ).der,
      work,
    );
    expect(renewal.attributes).toMatchObject({ pkiStatus: '0' });
    const revoked = await enrolled('burst-revoked');
    const [revokedRow] = await rowsOf('burst-revoked');
    await createHsmActivities({
      db: pipeline.db.db,
      token: pipeline.tokens.get('ca'),
      config: pipeline.config,
    }).revokeCertificate({
      issuingCa: revokedRow!.issuingCa,
      serialHex: revoked.serialHex,
      reason: 'keyCompromise',
      revokedAt: new Date().toISOString(),
      actor: 'operator:e2e',
    });
    const foreign = await foreignCertificate('burst-foreign');
    const expired = await ourCertificate(
      'burst-expired',
      new Date(Date.now() - 2 * 86_400_000),
      new Date(Date.now() - 86_400_000),
    );
    const victim = await makeDevice(work, 'burst-victim', challenge);
    const takenTid = newTid('burst-taken');
    const taken = await message({
      signer: { keyFile: victim.keyFile, certDer: victim.certDer },
      csr: victim.csrDer,
      messageType: 19,
      transactionId: takenTid,
    });
    expect((await postPkiOperation(scepUrl(), taken.der, work)).attributes).toMatchObject({ pkiStatus: '0' });
    const wrongChallenge = await makeDevice(work, 'burst-wrong-challenge', 'wrong');
    const stranger = await makeDevice(work, 'burst-stranger');

    // Prepared first, fired together.
    const bad: Array<{ name: string; body: Uint8Array | (() => Promise<Response>) }> = [
      { name: 'random bytes', body: new Uint8Array(randomBytes(700)) },
      { name: 'truncated message', body: taken.der.slice(0, 900) },
      { name: 'empty body', body: new Uint8Array() },
      { name: 'garbage GET', body: () => fetch(`${scepUrl()}?operation=PKIOperation&message=%%%25*`) },
      { name: 'unknown operation', body: () => fetch(`${scepUrl()}?operation=Explode`) },
      {
        name: 'superseded certificate',
        body: (await message({ signer: supersededSigner, csr: stranger.csrDer })).der,
      },
      {
        name: 'foreign certificate',
        body: (await message({ signer: foreign, csr: await csrFor(foreign.keyFile, 'burst-foreign') })).der,
      },
      {
        name: 'revoked certificate',
        body: (await message({ signer: revoked, csr: await csrFor(revoked.keyFile, 'burst-revoked') })).der,
      },
      {
        name: 'expired certificate',
        body: (await message({ signer: expired, csr: await csrFor(expired.keyFile, 'burst-expired') })).der,
      },
      {
        name: 'taken transactionID, another CSR',
        body: (
          await message({
            signer: { keyFile: victim.keyFile, certDer: victim.certDer },
            csr: stranger.csrDer,
            messageType: 19,
            transactionId: takenTid,
          })
        ).der,
      },
      {
        name: 'wrong challenge',
        body: (
          await message({
            signer: { keyFile: wrongChallenge.keyFile, certDer: wrongChallenge.certDer },
            csr: wrongChallenge.csrDer,
            messageType: 19,
          })
        ).der,
      },
    ];
    const goodNames = ['burst-good-1', 'burst-good-2', 'burst-good-3', 'burst-good-4', 'burst-good-5'];
    const [goods, bads] = await Promise.all([
      Promise.all(goodNames.map((cn) => scepclientEnroll({ url: scepUrl(), challenge, cn }))),
      Promise.all(
        bad.map(async ({ name, body }) => {
          if (typeof body === 'function') {
            const response = await body();
            return { name, status: response.status, attributes: undefined };
          }
          return { name, ...(await postPkiOperation(scepUrl(), body, work)) };
        }),
      ),
    ]);

    for (const [i, run] of goods.entries()) {
      expect(run.code, `${goodNames[i]}: ${run.output}`).toBe(0);
      const file = join(work, `${goodNames[i]}.pem`);
      writeFileSync(file, run.certificatePem!);
      expect((await judge(['verify', '-CAfile', chainFile, file])).code).toBe(0);
      expect(await rowsOf(goodNames[i]!)).toHaveLength(1);
    }
    for (const answer of bads) {
      if (answer.status === 200) expect(answer.attributes?.pkiStatus, answer.name).toBe('2');
      else {
        expect(answer.status, answer.name).toBeGreaterThanOrEqual(400);
        expect(answer.status, answer.name).toBeLessThan(500);
      }
    }
    expect(Object.fromEntries(bads.map((b) => [b.name, b.attributes?.failInfo ?? b.status]))).toEqual({
      'random bytes': 400,
      'truncated message': 400,
      'empty body': 400,
      'garbage GET': 400,
      'unknown operation': 400,
      'superseded certificate': FAIL.badRequest,
      'foreign certificate': FAIL.badCertId,
      'revoked certificate': FAIL.badRequest,
      'expired certificate': FAIL.badTime,
      'taken transactionID, another CSR': FAIL.badRequest,
      'wrong challenge': FAIL.badRequest,
    });
    for (const cn of ['burst-stranger', 'burst-foreign', 'burst-wrong-challenge'])
      expect(await rowsOf(cn)).toHaveLength(0);
    expect(await rowsOf('burst-victim')).toHaveLength(1);
    expect(await rowsOf('burst-revoked')).toHaveLength(1);
    expect(await rowsOf('burst-owner')).toHaveLength(2);
  });
});
