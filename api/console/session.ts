/**
 * Who is at the console. An operator's client certificate (when OPERATOR_AUTH accepts them) names
 * them on every request; otherwise they log in once with the operator token and a name, and get a
 * session: a short JWT (HS256) in an HttpOnly, Secure, SameSite=Strict cookie. Its key is derived
 * from OPERATOR_TOKEN, so every API replica accepts it and rotating the token ends every session.
 * Actions are recorded like the API's: the certificate's subject, or `token:<name given at login>`.
 */
import { hkdfSync } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { sign, verify } from 'hono/jwt';
import {
  certificateOperator,
  type Operator,
  type OperatorAuthOptions,
  operatorAuthMode,
  sameSecret,
} from '../http/auth.js';

const COOKIE = 'pki_console';
const SESSION_SECONDS = 8 * 3600;

/** The console's request variables: the operator, and the name their actions are recorded under. */
export type ConsoleEnv = { Variables: { operator: Operator; operatorName: string } };

type LoginResult = { ok: true } | { ok: false; status: 401 | 403 | 503; error: string };

export function consoleSessions(opts: OperatorAuthOptions) {
  const env = () => opts.env ?? process.env;
  const key = (): string | undefined => {
    const token = env().OPERATOR_TOKEN;
    if (!token) return undefined;
    return Buffer.from(hkdfSync('sha256', token, 'device-pki', 'console session v1', 32)).toString('hex');
  };

  /** Pages and actions: the certificate's operator, or the session's; anyone else goes to the login page. */
  const required: MiddlewareHandler<ConsoleEnv> = async (c, next) => {
    const byCertificate = await certificateOperator(c, opts);
    if (byCertificate) {
      c.set('operator', byCertificate);
      c.set('operatorName', byCertificate.name ?? 'certificate');
      return next();
    }
    // With certificates required, a session minted before the switch no longer counts.
    const name = operatorAuthMode(env()) === 'client-certificate' ? undefined : await sessionName(c);
    if (name === undefined) {
      const back = c.req.method === 'GET' ? c.req.path + new URL(c.req.url).search : '/console';
      return c.redirect(`/console/login?next=${encodeURIComponent(back)}`, 303);
    }
    c.set('operator', { name: undefined, via: 'token' });
    c.set('operatorName', name);
    return next();
  };

  async function sessionName(c: Context): Promise<string | undefined> {
    const cookie = getCookie(c, COOKIE);
    const secret = key();
    if (!cookie || !secret) return undefined;
    try {
      const payload = await verify(cookie, secret, 'HS256');
      return typeof payload.sub === 'string' ? payload.sub : undefined;
    } catch {
      return undefined;
    }
  }

  /** The login form's token, checked in constant time; a session for `name` on success. */
  async function login(c: Context, form: { token: string; name: string }): Promise<LoginResult> {
    if (operatorAuthMode(env()) === 'client-certificate')
      return { ok: false, status: 403, error: 'this console accepts operator client certificates only' };
    const secret = key();
    const expected = env().OPERATOR_TOKEN;
    if (!secret || !expected) return { ok: false, status: 503, error: 'OPERATOR_TOKEN is not set' };
    if (!sameSecret(form.token, expected)) return { ok: false, status: 401, error: 'wrong operator token' };
    const now = Math.floor(Date.now() / 1000);
    const jwt = await sign({ sub: form.name, iat: now, exp: now + SESSION_SECONDS }, secret, 'HS256');
    setCookie(c, COOKIE, jwt, {
      path: '/console',
      httpOnly: true,
      secure: true,
      sameSite: 'Strict',
      maxAge: SESSION_SECONDS,
    });
    return { ok: true };
  }

  function logout(c: Context): void {
    deleteCookie(c, COOKIE, { path: '/console', secure: true });
  }

  return { required, login, logout };
}
