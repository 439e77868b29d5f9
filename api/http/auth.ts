/**
 * Who is calling: one middleware per audience (operators here; MDM integrations authenticate per
 * integration in api/mdm/), and the constant-time credential checks they share.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
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

/** How operators prove who they are (OPERATOR_AUTH): the shared token, a client certificate, or either. */
export type OperatorAuthMode = 'token' | 'client-certificate' | 'token-or-certificate';

export interface OperatorAuthOptions {
  /** Where OPERATOR_AUTH and OPERATOR_TOKEN are read, per request (default process.env). */
  env?: NodeJS.ProcessEnv;
  /**
   * Accepts a client certificate the TLS layer verified against the operators' CA: the operator's
   * name (its subject CN), or why it is refused (not ours, revoked). Absent: no certificate counts.
   */
  certificate?: (der: Uint8Array) => Promise<{ name: string } | { refused: string }>;
}

export function operatorAuthMode(env: NodeJS.ProcessEnv = process.env): OperatorAuthMode {
  const mode = env.OPERATOR_AUTH ?? 'token';
  if (mode !== 'token' && mode !== 'client-certificate' && mode !== 'token-or-certificate')
    throw new Error('OPERATOR_AUTH must be token, client-certificate or token-or-certificate');
  return mode;
}

/**
 * Operator authentication. A client certificate (on the HTTPS listener, verified by TLS against the
 * operators' CA, and by us as a valid certificate of the operators' profile) names the operator; the
 * bearer token proves only that the caller holds it. With OPERATOR_AUTH=token and no OPERATOR_TOKEN
 * the operator API is closed (503), never open.
 */
export function operatorAuth(opts: OperatorAuthOptions = {}): MiddlewareHandler<OperatorEnv> {
  const env = opts.env ?? process.env;
  return async (c, next) => {
    // The console calls this API in-process for an operator it authenticated (api/console/).
    const delegated = (c.env as Partial<InProcessCall> | undefined)?.consoleOperator;
    if (delegated) {
      c.set('operator', delegated);
      return next();
    }
    const mode = operatorAuthMode(env);
    const byCertificate = await certificateOperator(c, opts);
    if (byCertificate) {
      c.set('operator', byCertificate);
      return next();
    }
    if (mode === 'client-certificate')
      throw jsonError(401, 'an operator client certificate (issued by the operators CA) is required');
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
 * What an in-process caller passes as Hono's env (`app.request(path, init, env)`). Only code in this
 * process can set it: a request from the network gets the Node server's env (its socket), never this.
 */
export interface InProcessCall {
  consoleOperator: Operator;
  /**
   * The operator's own request (Node's), so the API's rate limit counts the call against that
   * operator's address, not against one bucket shared by every console user.
   */
  incoming?: IncomingMessage;
}

/**
 * The operator a verified client certificate names, when OPERATOR_AUTH accepts certificates and the
 * connection presented one; throws 401 for a certificate that is not (or no longer) an operator's.
 */
export async function certificateOperator(
  c: Context,
  opts: OperatorAuthOptions,
): Promise<Operator | undefined> {
  if (operatorAuthMode(opts.env ?? process.env) === 'token' || !opts.certificate) return undefined;
  const der = verifiedClientCertificate(c);
  if (!der) return undefined;
  const verdict = await opts.certificate(der);
  if ('refused' in verdict) throw jsonError(401, `client certificate refused: ${verdict.refused}`);
  return { name: verdict.name, via: 'certificate' };
}

/** The client certificate of this request's TLS connection, when TLS verified its chain. */
function verifiedClientCertificate(c: Context): Uint8Array | undefined {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  const socket = incoming?.socket as TLSSocket | undefined;
  if (!socket || typeof socket.getPeerCertificate !== 'function' || !socket.authorized) return undefined;
  const peer = socket.getPeerCertificate();
  return peer?.raw ? new Uint8Array(peer.raw) : undefined;
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
