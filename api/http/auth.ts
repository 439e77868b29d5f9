/**
 * Who is calling: one middleware per audience (operators here; MDM integrations authenticate per
 * integration in api/mdm/), and the constant-time credential checks they share.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { jsonError } from './errors.js';

/** The authenticated operator, for the audit trail. */
export interface Operator {
  /**
   * Who they are, when the credential says (a client certificate's subject); undefined for the
   * shared bearer token, whose holder may only name themselves (`by`, recorded as self-asserted).
   */
  name: string | undefined;
  via: 'token' | 'certificate';
}

export type OperatorEnv = { Variables: { operator: Operator } };

/**
 * Operator authentication: `Authorization: Bearer $OPERATOR_TOKEN`. With OPERATOR_TOKEN unset the
 * operator API is closed (503), never open. `env` is read per request.
 */
export function operatorAuth(env: NodeJS.ProcessEnv = process.env): MiddlewareHandler<OperatorEnv> {
  return async (c, next) => {
    const expected = env.OPERATOR_TOKEN;
    if (!expected) throw jsonError(503, 'operator API disabled: OPERATOR_TOKEN is not set');
    if (!bearerMatches(c.req.header('authorization'), expected))
      throw jsonError(
        401,
        'missing or wrong operator token',
        {},
        { 'WWW-Authenticate': 'Bearer realm="device-pki-operator"' },
      );
    c.set('operator', { name: undefined, via: 'token' });
    await next();
  };
}

/**
 * The name an action is recorded under: the certificate's subject, or `token:<name the caller gave>`
 * (the shared token proves only that the caller holds it; the name is theirs to claim).
 */
export function actingOperator(c: Context<OperatorEnv>, selfAsserted: string | undefined): string {
  const operator = c.get('operator');
  if (operator?.name) return operator.name;
  return `token:${selfAsserted?.trim() || 'unnamed'}`;
}

/** `Authorization: Basic base64(user:password)` matches; both halves are always compared. */
export function basicAuthMatches(header: string | undefined, user: string, password: string): boolean {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  const decoded = match ? Buffer.from(match[1]!, 'base64').toString('utf8') : '';
  const colon = decoded.indexOf(':');
  const [givenUser, givenPassword] =
    colon < 0 ? ['', ''] : [decoded.slice(0, colon), decoded.slice(colon + 1)];
  const userOk = sameSecret(givenUser, user);
  const passwordOk = sameSecret(givenPassword, password);
  return colon >= 0 && userOk && passwordOk;
}

/** `Authorization: Bearer <token>` matches. */
export function bearerMatches(header: string | undefined, expected: string): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return sameSecret(match?.[1] ?? '', expected) && match !== null;
}

/** `signature` is the hex HMAC-SHA256 of `body` under `key` (case-insensitive hex). */
export function hmacSha256HexMatches(
  signature: string | undefined,
  body: Uint8Array,
  key: Uint8Array | string,
): boolean {
  const expected = createHmac('sha256', key).update(body).digest('hex');
  return sameSecret((signature ?? '').trim().toLowerCase(), expected) && signature !== undefined;
}

/** Constant time whatever the lengths: digests are compared, never the strings. */
export function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(expected));
}
