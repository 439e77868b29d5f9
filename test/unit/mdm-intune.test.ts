import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MdmUnavailableError } from '../../activities/mdm/http.js';
import { type IntuneConfig, intuneRevocationClient, intuneVerifier } from '../../activities/mdm/intune.js';
import { makeCsr, opensslFacts, signWithFixtureCa } from '../fakes/csr.js';
import {
  type FakeIntune,
  GRAPH_SCOPE,
  INTUNE_CODES,
  INTUNE_SCOPE,
  startFakeIntune,
} from '../fakes/intune.js';

const creds = { tenantId: 'contoso-tenant', clientId: 'app-123', clientSecret: 's3cret!' };
const env = { INTUNE_SECRET: creds.clientSecret };
let intune: FakeIntune;
let cfg: IntuneConfig;

beforeAll(async () => {
  intune = await startFakeIntune(creds);
  cfg = {
    type: 'intune',
    deviceIdFrom: 'commonName',
    tenantId: creds.tenantId,
    clientId: creds.clientId,
    clientSecretEnv: 'INTUNE_SECRET',
    authority: `${intune.url}/`,
    graphUrl: intune.url,
    timeoutMs: 500,
  };
});
afterAll(() => intune?.close());
afterEach(() => {
  intune.calls.length = 0;
  intune.knobs.codes.clear();
  intune.knobs.notificationCode = 'Success';
});

const csr = makeCsr({ subject: [['CN', 'laptop-001']], challenge: 'intune-made-this' });
const request = (transactionId = randomUUID()) => ({ profile: 'corp', transactionId, csr });

describe('Intune verifier', () => {
  it('names the device by the SAN URI IntuneDeviceId:// when the profile says so, and refuses a request without one', async () => {
    const verifier = intuneVerifier({ ...cfg, deviceIdFrom: 'intuneDeviceId' }, { env });
    const withId = makeCsr({
      subject: [['CN', 'alice']],
      challenge: 'intune-made-this',
      uri: ['IntuneDeviceId://0f3c1a2b-1111-4222-8333-944445555666'],
      email: ['alice@corp.example'],
    });
    expect(await verifier.verify({ profile: 'corp', transactionId: randomUUID(), csr: withId })).toEqual({
      verdict: 'approved',
      identity: {
        deviceId: '0f3c1a2b-1111-4222-8333-944445555666',
        vouchedBy: 'intune',
        attributes: {
          id: '0f3c1a2b-1111-4222-8333-944445555666',
          commonName: 'alice',
          intuneDeviceId: '0f3c1a2b-1111-4222-8333-944445555666',
          email: ['alice@corp.example'],
          uri: ['IntuneDeviceId://0f3c1a2b-1111-4222-8333-944445555666'],
        },
      },
    });
    expect(await verifier.verify(request())).toEqual({
      verdict: 'rejected',
      reason: 'the request carries no SAN URI IntuneDeviceId://<id> to name the device by',
    });
  });

  it('approves on Success, with one token per scope and the contract headers and body', async () => {
    const verifier = intuneVerifier(cfg, { env });
    const req = request();
    expect(await verifier.verify(req)).toEqual({
      verdict: 'approved',
      identity: {
        deviceId: 'laptop-001',
        vouchedBy: 'intune',
        attributes: { id: 'laptop-001', commonName: 'laptop-001' },
      },
    });

    const tokens = intune.callsTo('token').map((c) => c.body as Record<string, string>);
    expect(tokens.map((t) => t.scope)).toEqual([GRAPH_SCOPE, INTUNE_SCOPE]);
    expect(tokens[0]).toMatchObject({ grant_type: 'client_credentials', client_id: creds.clientId });
    const [validate] = intune.callsTo('validateRequest');
    expect(validate?.status).toBe(200);
    expect(validate?.headers['api-version']).toBe('2018-02-20');
    expect(validate?.body).toEqual({
      request: {
        transactionId: req.transactionId,
        certificateRequest: Buffer.from(csr).toString('base64'),
        callerInfo: 'device-pki',
      },
    });

    // Tokens and discovery are cached: a second request makes one call.
    intune.calls.length = 0;
    expect(await verifier.verify(request())).toMatchObject({ verdict: 'approved' });
    expect(intune.calls.map((c) => c.endpoint)).toEqual(['validateRequest']);
    // Each call carries its own client-request-id.
    expect(validate?.headers['client-request-id']).not.toBe(intune.calls[0]?.headers['client-request-id']);
  });

  it('rejects with the code and description of every non-Success code, and sends the failure notification', async () => {
    const verifier = intuneVerifier(cfg, { env });
    for (const code of INTUNE_CODES.filter((c) => c !== 'Success')) {
      const req = request();
      intune.knobs.codes.set(req.transactionId, code);
      expect(await verifier.verify(req)).toEqual({
        verdict: 'rejected',
        reason: `${code}: fake Intune says ${code}`,
        code,
      });
    }
    const req = request();
    intune.knobs.codes.set(req.transactionId, 'ChallengeExpired');
    const verdict = await verifier.verify(req);
    expect(verdict.verdict).toBe('rejected');
    await verifier.notifyFailure?.({ ...req, reason: `${'x'.repeat(300)}` });
    const [failure] = intune.callsTo('failureNotification');
    expect(failure?.status).toBe(200);
    expect(failure?.body).toEqual({
      notification: {
        transactionId: req.transactionId,
        certificateRequest: Buffer.from(csr).toString('base64'),
        hResult: 0x80004005 | 0,
        errorDescription: 'x'.repeat(255),
        callerInfo: 'device-pki',
      },
    });
  });

  it('throws on 500, then the next call discovers the services again and succeeds', async () => {
    const verifier = intuneVerifier(cfg, { env });
    expect(await verifier.verify(request())).toMatchObject({ verdict: 'approved' });
    intune.calls.length = 0;
    intune.knobs.failNext('validateRequest', '500');
    await expect(verifier.verify(request())).rejects.toThrow(MdmUnavailableError);
    expect(await verifier.verify(request())).toMatchObject({ verdict: 'approved' });
    expect(intune.calls.map((c) => c.endpoint)).toEqual(['validateRequest', 'discovery', 'validateRequest']);
  });

  it('throws on 401, then fetches a fresh Intune token and succeeds', async () => {
    const verifier = intuneVerifier(cfg, { env });
    expect(await verifier.verify(request())).toMatchObject({ verdict: 'approved' });
    intune.knobs.failNext('validateRequest', '401');
    await expect(verifier.verify(request())).rejects.toThrow(/HTTP 401/);
    intune.calls.length = 0;
    expect(await verifier.verify(request())).toMatchObject({ verdict: 'approved' });
    const endpoints = intune.calls.map((c) => c.endpoint);
    expect(endpoints).toContain('token');
    expect((intune.callsTo('token')[0]?.body as Record<string, string> | undefined)?.scope).toBe(
      INTUNE_SCOPE,
    );
    expect(endpoints.at(-1)).toBe('validateRequest');
  });

  it('throws on a non-JSON body, a timeout, a cut connection and a failed discovery; recovers each time', async () => {
    const verifier = intuneVerifier(cfg, { env });
    intune.knobs.failNext('validateRequest', 'non-json');
    await expect(verifier.verify(request())).rejects.toThrow(/not JSON/);
    expect(await verifier.verify(request())).toMatchObject({ verdict: 'approved' });

    intune.knobs.failNext('validateRequest', 'slow');
    await expect(verifier.verify(request())).rejects.toThrow(/no answer within 500 ms/);
    expect(await verifier.verify(request())).toMatchObject({ verdict: 'approved' });

    intune.knobs.failNext('validateRequest', 'drop');
    await expect(verifier.verify(request())).rejects.toThrow(MdmUnavailableError);
    expect(await verifier.verify(request())).toMatchObject({ verdict: 'approved' });

    // Discovery itself failing, then the validation failing: discovery is redone after each.
    intune.knobs.failNext('validateRequest', '500');
    await expect(verifier.verify(request())).rejects.toThrow(/HTTP 500/);
    intune.knobs.failNext('discovery', '500');
    await expect(verifier.verify(request())).rejects.toThrow(/Graph service discovery: HTTP 500/);
    intune.calls.length = 0;
    expect(await verifier.verify(request())).toMatchObject({ verdict: 'approved' });
    expect(intune.calls.map((c) => c.endpoint)).toEqual(['discovery', 'validateRequest']);
  });

  it('throws when the token endpoint refuses the secret or nothing listens (DNS/connection)', async () => {
    const wrong = intuneVerifier(cfg, { env: { INTUNE_SECRET: 'wrong' } });
    await expect(wrong.verify(request())).rejects.toThrow(/Entra \(Graph\) token: HTTP 401/);
    const nowhere = intuneVerifier({ ...cfg, authority: 'http://no-such-host.invalid/' }, { env });
    await expect(nowhere.verify(request())).rejects.toThrow(MdmUnavailableError);
    expect(() => intuneVerifier(cfg, { env: {} })).toThrow(/INTUNE_SECRET/);
  });

  it('sends the success notification with thumbprint, serial, expiry and issuer, and returns the context', async () => {
    const verifier = intuneVerifier(cfg, { env });
    const req = request();
    const { certificate } = signWithFixtureCa(csr);
    const facts = opensslFacts(certificate);
    const context = await verifier.notifySuccess?.({ ...req, certificate });
    const [success] = intune.callsTo('successNotification');
    const notification =
      (success?.body as { notification: Record<string, string> } | undefined)?.notification ?? {};
    expect(notification).toMatchObject({
      transactionId: req.transactionId,
      certificateRequest: Buffer.from(csr).toString('base64'),
      certificateThumbprint: facts.sha1,
      certificateSerialNumber: facts.serial,
      issuingCertificateAuthority: facts.issuer,
      caConfiguration: 'corp',
      callerInfo: 'device-pki',
    });
    expect(new Date(notification.certificateExpirationDateUtc!).getTime()).toBeGreaterThan(Date.now());
    expect(context).toMatchObject({ mdm: 'intune', serialNumber: facts.serial, issuerName: facts.issuer });
  });

  it('throws when the success notification fails (no certificate for the device), then succeeds', async () => {
    const verifier = intuneVerifier(cfg, { env });
    const { certificate } = signWithFixtureCa(csr);
    const notice = { ...request(), certificate };
    intune.knobs.failNext('successNotification', '500');
    await expect(verifier.notifySuccess?.(notice)).rejects.toThrow(/HTTP 500/);
    intune.knobs.notificationCode = 'Unknown';
    await expect(verifier.notifySuccess?.(notice)).rejects.toThrow(
      /refused the success notification: Unknown/,
    );
    intune.knobs.notificationCode = 'Success';
    await expect(verifier.notifySuccess?.(notice)).resolves.toMatchObject({ mdm: 'intune' });
  });
});

describe('Intune revocation client', () => {
  it('downloads revocation requests and uploads results over the PKI connector', async () => {
    const client = intuneRevocationClient(cfg, { env });
    intune.revocationQueue.push(
      { requestContext: 'ctx-1', serialNumber: '0A1B2C3D4E5F', issuerName: 'CN=CA', caConfiguration: 'corp' },
      { requestContext: 'ctx-2', serialNumber: 'FF01', issuerName: 'CN=CA', caConfiguration: 'corp' },
    );
    const first = await client.downloadRevocationRequests(1);
    expect(first).toEqual([
      {
        requestContext: 'ctx-1',
        serialNumber: '0A1B2C3D4E5F',
        serialHex: '0a1b2c3d4e5f',
        issuerName: 'CN=CA',
        caConfiguration: 'corp',
      },
    ]);
    const [download] = intune.callsTo('downloadRevocationRequests');
    expect(download?.headers['api-version']).toBe('5019-05-05');
    expect(download?.body).toEqual({ downloadParameters: { maxRequests: 1, issuerName: null } });
    expect(await client.downloadRevocationRequests(500)).toHaveLength(1);
    expect(await client.downloadRevocationRequests(10)).toEqual([]);
    await expect(client.downloadRevocationRequests(501)).rejects.toThrow(RangeError);

    await client.uploadRevocationResults([
      { requestContext: 'ctx-1', succeeded: true, errorCode: 0, errorMessage: '' },
      { requestContext: 'ctx-2', succeeded: false, errorCode: 4004, errorMessage: 'certificate not found' },
    ]);
    expect(intune.revocationResults).toEqual([
      { requestContext: 'ctx-1', succeeded: true, errorCode: '0', errorMessage: '' },
      { requestContext: 'ctx-2', succeeded: false, errorCode: '4004', errorMessage: 'certificate not found' },
    ]);
  });

  it('throws on transient failures and recovers', async () => {
    const client = intuneRevocationClient(cfg, { env });
    intune.knobs.failNext('downloadRevocationRequests', '401');
    await expect(client.downloadRevocationRequests(5)).rejects.toThrow(/HTTP 401/);
    expect(await client.downloadRevocationRequests(5)).toEqual([]);
    intune.knobs.failNext('uploadRevocationResults', 'non-json');
    const result = { requestContext: 'ctx-9', succeeded: true, errorCode: 0, errorMessage: '' };
    await expect(client.uploadRevocationResults([result])).rejects.toThrow(/not JSON/);
    await client.uploadRevocationResults([result]);
    expect(intune.revocationResults).toContainEqual({ ...result, errorCode: '0' });
  });
});
