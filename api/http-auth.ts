/** Credential checks shared by the operator and MDM webhook routes: constant time, never early exits. */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

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
