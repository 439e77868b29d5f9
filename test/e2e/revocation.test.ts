import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { latestCrl, publishCrl } from '../../activities/ca/local-hsm/crl.js';
import { createHsmActivities } from '../../activities/index.js';
import { auditEvents, certificates } from '../../db/schema.js';
import { crlInfo } from '../../pki/x509/crl.js';
import { certificateText, certsFromPkcs7, openssl, serialOf } from '../support/openssl.js';
import { buildPkiMessage, der, issuerAndSerial, makeDevice } from '../support/openssl-scep.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { scepclientEnroll } from '../support/scep-clients.js';

let pipeline: Pipeline;
let work: string;

const deps = () => ({ db: pipeline.db.db, token: pipeline.tokens.get('ca'), config: pipeline.config });
const pemOf = (bytes: Uint8Array, label: string) =>
  `-----BEGIN ${label}-----\n${Buffer.from(bytes)
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')}\n-----END ${label}-----\n`;
const write = (name: string, content: string | Uint8Array) => {
  const path = join(work, name);
  writeFileSync(path, content);
  return path;
};

beforeAll(async () => {
  pipeline = await startPipeline();
  work = mkdtempSync(join(tmpdir(), 'e2e-revocation-'));
});
afterAll(async () => {
  await pipeline?.stop();
});

describe('revoking an enrolled device certificate', () => {
  const state = {} as {
    certFile: string;
    certDer: Uint8Array;
    issuingFile: string;
    chainFile: string;
    raFile: string;
    serialHex: string;
    issuingCa: string;
    crlNumber: number;
    revokedAt: string;
    crlDer: Uint8Array;
  };

  const ocsp = async () =>
    openssl([
      'ocsp',
      '-issuer',
      state.issuingFile,
      '-cert',
      state.certFile,
      '-url',
      `${pipeline.url}/ocsp`,
      '-CAfile',
      state.chainFile,
    ]);

  /** Sends a GetCert (21) or GetCRL (22) signed by a throwaway key, encrypted to the RA. */
  const scepGet = async (messageType: 21 | 22, content: Uint8Array, tid: string) => {
    const device = await makeDevice(work, `getter-${tid}`);
    const message = await buildPkiMessage({
      dir: work,
      recipients: [state.raFile],
      signer: { keyFile: device.keyFile, certDer: device.certDer },
      cipher: 'aes256',
      digest: 'sha256',
      messageType,
      transactionId: tid,
      content,
    });
    const response = await fetch(`${pipeline.url}/scep?operation=PKIOperation`, {
      method: 'POST',
      body: message.der,
    });
    expect(response.status).toBe(200);
    const rep = write(`${tid}-rep.der`, new Uint8Array(await response.arrayBuffer()));
    const printed = await openssl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', rep]);
    const status = /2\.16\.840\.1\.113733\.1\.9\.3[\s\S]*?PRINTABLESTRING:(\d)/.exec(printed.output)?.[1];
    const failInfo = /2\.16\.840\.1\.113733\.1\.9\.4[\s\S]*?PRINTABLESTRING:(\d)/.exec(printed.output)?.[1];
    if (status !== '0') return { status, failInfo };
    const envelope = join(work, `${tid}-env.der`);
    const inner = join(work, `${tid}-inner.der`);
    const verified = await openssl([
      'cms',
      '-verify',
      '-noverify',
      '-inform',
      'DER',
      '-in',
      rep,
      '-out',
      envelope,
    ]);
    expect(verified.code, verified.output).toBe(0);
    const opened = await openssl([
      'cms',
      '-decrypt',
      '-inform',
      'DER',
      '-in',
      envelope,
      '-inkey',
      device.keyFile,
      '-recip',
      device.certFile,
      '-out',
      inner,
    ]);
    expect(opened.code, opened.output).toBe(0);
    return { status, failInfo, inner: new Uint8Array(readFileSync(inner)) };
  };

  it('enrolls a device whose certificate names the CRL and OCSP URLs', async () => {
    const run = await scepclientEnroll({
      url: `${pipeline.url}/scep`,
      challenge: 'test-challenge',
      cn: 'laptop-revoke',
    });
    expect(run.code, run.output).toBe(0);
    const caResponse = await fetch(`${pipeline.url}/scep?operation=GetCACert`);
    const [ra, issuing, root] = await certsFromPkcs7(new Uint8Array(await caResponse.arrayBuffer()), work);
    state.certFile = write('cert.pem', run.certificatePem!);
    state.issuingFile = write('issuing.pem', issuing!);
    state.chainFile = write('chain.pem', `${issuing}\n${root}\n`);
    state.raFile = write('ra.pem', ra!);
    state.serialHex = await serialOf(run.certificatePem!, work);
    const text = await certificateText(run.certificatePem!, work);
    expect(text).toMatch(/X509v3 CRL Distribution Points:[\s\S]*URI:http[^\s]*\/crl\/devices\.crl/);
    expect(text).toMatch(/Authority Information Access:[\s\S]*OCSP - URI:http[^\s]*\/ocsp/);
    const [row] = await pipeline.db.db
      .select({ issuingCa: certificates.issuingCa, der: certificates.der, status: certificates.status })
      .from(certificates)
      .where(eq(certificates.serialHex, state.serialHex));
    expect(row?.status).toBe('valid');
    state.issuingCa = row!.issuingCa;
    state.certDer = row!.der;
  });

  it('OCSP says good before revocation (POST and GET)', async () => {
    const answer = await ocsp();
    expect(answer.code, answer.output).toBe(0);
    expect(answer.output).toMatch(/Response verify OK/);
    expect(answer.output).toMatch(/cert\.pem: good/);

    const reqFile = join(work, 'get-req.der');
    const made = await openssl([
      'ocsp',
      '-issuer',
      state.issuingFile,
      '-cert',
      state.certFile,
      '-reqout',
      reqFile,
    ]);
    expect(made.code, made.output).toBe(0);
    const b64 = readFileSync(reqFile).toString('base64');
    const got = await fetch(`${pipeline.url}/ocsp/${encodeURIComponent(b64)}`);
    expect(got.headers.get('content-type')).toBe('application/ocsp-response');
    const respFile = write('get-resp.der', new Uint8Array(await got.arrayBuffer()));
    const checked = await openssl([
      'ocsp',
      '-respin',
      respFile,
      '-reqin',
      reqFile,
      '-CAfile',
      state.chainFile,
      '-resp_text',
    ]);
    expect(checked.code, checked.output).toBe(0);
    expect(checked.output).toMatch(/Response verify OK/);
    expect(checked.output).toMatch(/Cert Status: good/);
  });

  it('answers garbage OCSP with malformedRequest', async () => {
    const response = await fetch(`${pipeline.url}/ocsp`, {
      method: 'POST',
      headers: { 'content-type': 'application/ocsp-request' },
      body: 'definitely not DER',
    });
    const file = write('garbage-resp.der', new Uint8Array(await response.arrayBuffer()));
    const text = await openssl(['ocsp', '-respin', file, '-resp_text', '-noverify']);
    expect(text.output).toMatch(/malformedrequest/);
  });

  it('revokes: the CRL served at /crl/devices.crl makes openssl verify reject the certificate', async () => {
    const before = (await latestCrl(pipeline.db.db, state.issuingCa))?.crlNumber ?? 0;
    state.revokedAt = new Date(Date.now() - 5_000).toISOString();
    const result = await createHsmActivities(deps()).revokeCertificate({
      issuingCa: state.issuingCa,
      serialHex: state.serialHex,
      reason: 'keyCompromise',
      revokedAt: state.revokedAt,
      actor: 'operator:e2e',
    });
    expect(result).toEqual({ revokedAt: state.revokedAt, alreadyRevoked: false });
    state.crlNumber = (await latestCrl(pipeline.db.db, state.issuingCa))!.crlNumber;
    expect(state.crlNumber).toBe(before + 1);

    const response = await fetch(`${pipeline.url}/crl/devices.crl`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/pkix-crl');
    state.crlDer = new Uint8Array(await response.arrayBuffer());
    const crlPem = write('devices-crl.pem', pemOf(state.crlDer, 'X509 CRL'));
    const crlCheck = await openssl(['crl', '-in', crlPem, '-CAfile', state.chainFile, '-noout', '-text']);
    expect(crlCheck.output).toMatch(/verify OK/);
    expect(crlCheck.output).toMatch(
      new RegExp(`Serial Number: ${state.serialHex}[\\s\\S]*?Key Compromise`, 'i'),
    );
    const verdict = await openssl([
      'verify',
      '-crl_check',
      '-CRLfile',
      crlPem,
      '-CAfile',
      state.chainFile,
      state.certFile,
    ]);
    expect(verdict.code).not.toBe(0);
    expect(verdict.output).toMatch(/certificate revoked/);

    const unknownProfile = await fetch(`${pipeline.url}/crl/nope.crl`);
    expect(unknownProfile.status).toBe(404);
  });

  it('OCSP says revoked, with the reason', async () => {
    const answer = await ocsp();
    expect(answer.code, answer.output).toBe(0);
    expect(answer.output).toMatch(/Response verify OK/);
    expect(answer.output).toMatch(/cert\.pem: revoked/);
    expect(answer.output).toMatch(/Reason: keyCompromise/);
  });

  it('SCEP GetCRL returns the same CRL bytes, GetCert the certificate; unknown serials get badCertId', async () => {
    const { issuer, serial } = issuerAndSerial(state.certDer);
    const crl = await scepGet(22, der.seq(issuer, serial), 'getcrl-1');
    expect(crl.status).toBe('0');
    expect(Buffer.from(crl.inner!).indexOf(Buffer.from(state.crlDer))).toBeGreaterThan(0);

    const cert = await scepGet(21, der.seq(issuer, serial), 'getcert-1');
    expect(cert.status).toBe('0');
    expect(Buffer.from(cert.inner!).indexOf(Buffer.from(state.certDer))).toBeGreaterThan(0);

    const unknownSerial = der.tlv(0x02, Uint8Array.of(0x01, 0x02, 0x03, 0x04, 0x05));
    for (const [type, tid] of [
      [22, 'getcrl-unknown'],
      [21, 'getcert-unknown'],
    ] as const) {
      const failed = await scepGet(type, der.seq(issuer, unknownSerial), tid);
      expect(failed).toMatchObject({ status: '2', failInfo: '4' });
    }
  });

  it('revoking again keeps the first reason and time, and publishes no new CRL', async () => {
    const again = await createHsmActivities(deps()).revokeCertificate({
      issuingCa: state.issuingCa,
      serialHex: state.serialHex,
      reason: 'superseded',
      revokedAt: new Date().toISOString(),
      actor: 'operator:e2e-again',
    });
    expect(again).toEqual({ revokedAt: state.revokedAt, alreadyRevoked: true });
    const [row] = await pipeline.db.db
      .select()
      .from(certificates)
      .where(and(eq(certificates.issuingCa, state.issuingCa), eq(certificates.serialHex, state.serialHex)));
    expect(row).toMatchObject({ status: 'revoked', revocationReason: 'keyCompromise' });
    expect(row!.revokedAt?.toISOString()).toBe(state.revokedAt);
    expect((await latestCrl(pipeline.db.db, state.issuingCa))!.crlNumber).toBe(state.crlNumber);
    const audits = await pipeline.db.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.subject, state.serialHex), eq(auditEvents.action, 'certificate.revoked')));
    expect(audits).toHaveLength(1);
    expect(audits[0]).toMatchObject({ actor: 'operator:e2e', deviceId: 'laptop-revoke', profile: 'devices' });
  });

  it('refuses unknown certificates and CAs without touching anything', async () => {
    const base = {
      reason: 'keyCompromise' as const,
      revokedAt: new Date().toISOString(),
      actor: 'operator:e2e',
    };
    await expect(
      createHsmActivities(deps()).revokeCertificate({
        ...base,
        issuingCa: state.issuingCa,
        serialHex: '0badc0ffee',
      }),
    ).rejects.toMatchObject({ type: 'UnknownCertificate', nonRetryable: true });
    await expect(
      createHsmActivities(deps()).revokeCertificate({
        ...base,
        issuingCa: 'not-a-ca',
        serialHex: state.serialHex,
      }),
    ).rejects.toMatchObject({ type: 'UnknownIssuingCa', nonRetryable: true });
    expect((await latestCrl(pipeline.db.db, state.issuingCa))!.crlNumber).toBe(state.crlNumber);
  });

  it('concurrent publishers take consecutive CRL numbers, never the same one', async () => {
    const results = await Promise.all(
      [1, 2, 3].map(() => publishCrl(deps(), { issuingCa: state.issuingCa })),
    );
    const numbers = results.map((r) => r.crlNumber).sort((x, y) => x - y);
    expect(new Set(numbers).size).toBe(3);
    expect(numbers[2]! - numbers[0]!).toBe(2);
    const latest = (await latestCrl(pipeline.db.db, state.issuingCa))!;
    expect(latest.crlNumber).toBe(numbers[2]);
    expect(crlInfo(latest.der)).toMatchObject({
      crlNumber: numbers[2],
      serials: expect.arrayContaining([state.serialHex]),
    });
  });
});
