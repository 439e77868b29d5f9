/**
 * The console acts only through the operator API: each page reads it and each button posts to it,
 * in-process, on behalf of the operator the console authenticated (api/http/auth.ts InProcessCall).
 * The API keeps every rule and every audit entry; the console only renders.
 */
import type { Context, Hono } from 'hono';
import type { InProcessCall, OperatorEnv } from '../http/auth.js';
import type { ConsoleEnv } from './session.js';

export type ApiAnswer<T> =
  | { ok: true; status: number; body: T }
  | { ok: false; status: number; error: string };

/** The operator the console authenticated, and their request (its address counts for rate limits). */
function onBehalfOf(c: Context<ConsoleEnv>): InProcessCall {
  const incoming = (c.env as { incoming?: InProcessCall['incoming'] } | undefined)?.incoming;
  return { consoleOperator: c.get('operator'), ...(incoming ? { incoming } : {}) };
}

export function operatorApiClient(api: Hono<OperatorEnv>) {
  /** The API's own answer, for what the console hands over as it is (a CSV download). */
  const forward = (c: Context<ConsoleEnv>, path: string): Promise<Response> => {
    const env = onBehalfOf(c);
    return Promise.resolve(api.request(path, { method: 'GET' }, env));
  };
  const call = async function call<T>(
    c: Context<ConsoleEnv>,
    method: 'GET' | 'POST',
    path: string,
    body?: Record<string, unknown>,
  ): Promise<ApiAnswer<T>> {
    const env = onBehalfOf(c);
    const res = await api.request(
      path,
      {
        method,
        ...(body ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
      },
      env,
    );
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!res.ok)
      return {
        ok: false,
        status: res.status,
        error: (json as { error?: string } | undefined)?.error ?? (text || `HTTP ${res.status}`),
      };
    return { ok: true, status: res.status, body: json as T };
  };
  return Object.assign(call, { forward });
}
