import { createHash, verify, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signClientAssertion } from '../../activities/mdm/client-assertion.js';
import type { HsmToken } from '../../hsm/token.js';
import { buildCertificate } from '../../pki/x509/certificate.js';
import { encodeName } from '../../pki/x509/name.js';
import { checkClientAssertion, thumbprintS256 } from '../fakes/client-assertion-check.js';
import { openThrowawayToken } from '../support/throwaway-token.js';

let hsm: Awaited<ReturnType<typeof openThrowawayToken>>;
let token: HsmToken;
let certificate: Uint8Array;
const aud = 'https://login.example/contoso/oauth2/v2.0/token';

beforeAll(async () => {
  hsm = await openThrowawayToken('assertion');
  token = hsm.token;
  const { spki } = await token.generateKeyPair('service/test/1', 'rsa-2048', 'signing');
  const now = Date.now();
  certificate = await buildCertificate({
    serialNumber: Buffer.from([0x41, 2, 3]),
    subject: encodeName([['CN', 'service test']]),
    subjectPublicKeyInfo: spki,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3_600_000),
    issuer: { kind: 'self', signer: await token.signer('service/test/1') },
    extensions: { keyUsages: ['digitalSignature'] },
  });
});
afterAll(async () => hsm?.close());

const decode = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

describe('client assertion signed in the HSM', () => {
  it('is an RS256 JWT whose signature node:crypto verifies with the certificate, with the Entra claims', async () => {
    const now = new Date('2026-01-02T03:04:05Z');
    const jwt = await signClientAssertion({
      clientId: 'app-1',
      audience: aud,
      certificate,
      signer: await token.signer('service/test/1'),
      now,
    });
    const [h, p, s] = jwt.split('.') as [string, string, string];
    const header = decode(h);
    const claims = decode(p);
    expect(header).toEqual({
      alg: 'RS256',
      typ: 'JWT',
      x5t: createHash('sha1').update(certificate).digest('base64url'),
      'x5t#S256': thumbprintS256(certificate),
    });
    const pub = new X509Certificate(Buffer.from(certificate)).publicKey;
    expect(verify('sha256', Buffer.from(`${h}.${p}`), pub, Buffer.from(s, 'base64url'))).toBe(true);
    expect(verify('sha256', Buffer.from(`${h}.${p}x`), pub, Buffer.from(s, 'base64url'))).toBe(false);
    expect(claims).toMatchObject({
      aud,
      iss: 'app-1',
      sub: 'app-1',
      iat: now.getTime() / 1000,
      nbf: now.getTime() / 1000,
    });
    expect(claims.exp - claims.nbf).toBeLessThanOrEqual(600);
    expect(claims.exp).toBeGreaterThan(claims.nbf);
  });

  it('passes the fake Entra check once, and is refused when replayed or for another certificate', async () => {
    const signer = await token.signer('service/test/1');
    const jwt = await signClientAssertion({ clientId: 'app-1', audience: aud, certificate, signer });
    const seenJti = new Set<string>();
    expect(
      checkClientAssertion(jwt, { clientId: 'app-1', audience: aud, registered: [certificate], seenJti }).ok,
    ).toBe(true);
    expect(
      checkClientAssertion(jwt, { clientId: 'app-1', audience: aud, registered: [certificate], seenJti }),
    ).toMatchObject({ ok: false, code: 'AADSTS700025' });
    expect(
      checkClientAssertion(jwt, { clientId: 'app-1', audience: aud, registered: [], seenJti: new Set() }),
    ).toMatchObject({ ok: false, code: 'AADSTS700027' });
    expect(
      checkClientAssertion(jwt, {
        clientId: 'app-2',
        audience: aud,
        registered: [certificate],
        seenJti: new Set(),
      }),
    ).toMatchObject({ ok: false, code: 'AADSTS700023' });
    // A signature over other claims (a tampered payload) is refused.
    const [h, , s] = jwt.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ aud, iss: 'app-1', sub: 'app-1' })).toString('base64url')}.${s}`;
    expect(
      checkClientAssertion(forged, {
        clientId: 'app-1',
        audience: aud,
        registered: [certificate],
        seenJti: new Set(),
      }),
    ).toMatchObject({ ok: false, code: 'AADSTS7000274' });
  });

  it('refuses an EC key (Entra certificate credentials are RSA)', async () => {
    await token.generateKeyPair('service/test/ec', 'ec-p256', 'signing');
    await expect(
      signClientAssertion({
        clientId: 'a',
        audience: aud,
        certificate,
        signer: await token.signer('service/test/ec'),
      }),
    ).rejects.toThrow(/must be RSA/);
  });
});
