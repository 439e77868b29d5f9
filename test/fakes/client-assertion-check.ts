/**
 * What Entra ID checks of a client assertion (RFC 7523; Microsoft identity platform "certificate
 * credentials"), with node:crypto: the header's x5t#S256 names a registered certificate, the RS256
 * signature verifies with that certificate's key, aud is the token endpoint, iss = sub = client id,
 * the assertion is within nbf..exp, at most 10 minutes long, and its jti was never seen.
 * Answers an AADSTS-style error on refusal.
 */
import { createHash, verify, X509Certificate } from 'node:crypto';

export type AssertionVerdict =
  | { ok: true; thumbprint: string }
  | { ok: false; error: 'invalid_client' | 'invalid_request'; code: string; description: string };

export interface AssertionExpectations {
  clientId: string;
  audience: string;
  /** DER certificates registered on the app (several during a rotation's overlap). */
  registered: Uint8Array[];
  /** jti values already used (replay); the accepted one is added. */
  seenJti: Set<string>;
  now?: Date;
}

const refuse = (
  code: string,
  description: string,
  error: 'invalid_client' | 'invalid_request' = 'invalid_client',
) => ({ ok: false, error, code, description }) as const;

export const thumbprintS256 = (der: Uint8Array) => createHash('sha256').update(der).digest('base64url');

export function checkClientAssertion(assertion: string, expect: AssertionExpectations): AssertionVerdict {
  const parts = assertion.split('.');
  if (parts.length !== 3)
    return refuse('AADSTS50027', 'Invalid JWT token: not three parts.', 'invalid_request');
  const [h, p, s] = parts as [string, string, string];
  let header: Record<string, unknown>;
  let claims: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  } catch {
    return refuse('AADSTS50027', 'Invalid JWT token: not JSON.', 'invalid_request');
  }
  if (header.alg !== 'RS256' && header.alg !== 'PS256')
    return refuse(
      'AADSTS5002738',
      `Invalid JWT token. '${String(header.alg)}' is not a supported signature algorithm.`,
    );
  const thumbprint = header['x5t#S256'];
  const certificate = expect.registered.find((der) => thumbprintS256(der) === thumbprint);
  if (typeof thumbprint !== 'string' || !certificate)
    return refuse(
      'AADSTS700027',
      `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${String(thumbprint)}']`,
    );
  const key = new X509Certificate(Buffer.from(certificate)).publicKey;
  const signed = Buffer.from(`${h}.${p}`, 'ascii');
  const signature = Buffer.from(s, 'base64url');
  const valid =
    header.alg === 'RS256'
      ? verify('sha256', signed, key, signature)
      : verify('sha256', signed, { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */ }, signature);
  if (!valid) return refuse('AADSTS7000274', 'Client assertion contains an invalid signature.');
  if (claims.aud !== expect.audience)
    return refuse(
      'AADSTS700212',
      `No matching federated identity record found for presented assertion audience '${String(claims.aud)}'.`,
    );
  if (claims.iss !== expect.clientId || claims.sub !== expect.clientId)
    return refuse(
      'AADSTS700023',
      'Client assertion audience claim does not match Realm issuer or iss/sub is not the client id.',
    );
  const now = Math.floor((expect.now ?? new Date()).getTime() / 1000);
  const { exp, nbf } = claims;
  if (typeof exp !== 'number' || typeof nbf !== 'number' || typeof claims.iat !== 'number')
    return refuse('AADSTS700024', 'Client assertion lacks exp, nbf or iat.');
  if (now > exp + 60)
    return refuse('AADSTS700024', 'Client assertion is not within its valid time range (expired).');
  if (now < nbf - 60)
    return refuse('AADSTS700024', 'Client assertion is not within its valid time range (not yet valid).');
  if (exp - nbf > 600) return refuse('AADSTS700024', 'Client assertion lifetime exceeds 10 minutes.');
  if (typeof claims.jti !== 'string' || claims.jti.length === 0)
    return refuse('AADSTS700024', 'Client assertion has no jti.');
  if (expect.seenJti.has(claims.jti))
    return refuse('AADSTS700025', 'Client assertion jti was already used (replay).');
  expect.seenJti.add(claims.jti);
  return { ok: true, thumbprint };
}
