/**
 * OAuth client assertions (RFC 7523, Entra ID "certificate credentials"): a JWT the client signs
 * with its private key instead of sending a client secret. The key stays in the HSM: the header and
 * claims are JSON + base64url (JWS compact serialization, RFC 7515), the signature comes from the
 * token's signer (CKM_SHA256_RSA_PKCS = RS256). No JWT library here because none of those installed
 * can sign with a key it cannot read.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Signer } from '../../pki/keys.js';

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Entra accepts assertions up to 10 minutes; a short one limits what a leaked assertion is worth. */
export const ASSERTION_LIFETIME_SECONDS = 5 * 60;

export interface ClientAssertionInput {
  /** The app registration's client id: iss and sub. */
  clientId: string;
  /** The token endpoint URL: aud. */
  audience: string;
  /** DER of the certificate registered with the identity provider: its SHA-256 is the x5t#S256 header. */
  certificate: Uint8Array;
  signer: Signer;
  now?: Date;
}

const base64url = (bytes: Uint8Array | string) => Buffer.from(bytes).toString('base64url');

/** base64url SHA-256 of the certificate DER: how Entra finds which registered certificate to check. */
export const certificateThumbprintS256 = (der: Uint8Array) =>
  base64url(createHash('sha256').update(der).digest());

export async function signClientAssertion(input: ClientAssertionInput): Promise<string> {
  if (!input.signer.keyAlgorithm.startsWith('rsa-'))
    // Entra's certificate credentials are RSA (RS256/PS256): an EC key would be refused at the token endpoint.
    throw new Error(`a client assertion key must be RSA, not ${input.signer.keyAlgorithm}`);
  const now = Math.floor((input.now ?? new Date()).getTime() / 1000);
  // x5t#S256 is what Entra's current documentation asks for; x5t (SHA-1) is what older tenants and
  // MSAL versions look up. Both name the same certificate, so both are sent.
  const header = {
    alg: 'RS256',
    typ: 'JWT',
    x5t: base64url(createHash('sha1').update(input.certificate).digest()),
    'x5t#S256': certificateThumbprintS256(input.certificate),
  };
  const claims = {
    aud: input.audience,
    iss: input.clientId,
    sub: input.clientId,
    jti: randomUUID(),
    iat: now,
    nbf: now,
    exp: now + ASSERTION_LIFETIME_SECONDS,
  };
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const signature = await input.signer.sign(Buffer.from(signingInput, 'ascii'), 'SHA-256');
  return `${signingInput}.${base64url(signature)}`;
}
