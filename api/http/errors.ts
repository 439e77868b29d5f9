/**
 * One error shape per API: JSON `{"error": "..."}` for the operator and integration APIs, plain text
 * for SCEP (devices read no JSON). Handlers throw; the app's onError answers (hono's HTTPException).
 */
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { z } from 'zod';

/** A JSON error answer, thrown from a handler or middleware. */
export function jsonError(
  status: ContentfulStatusCode,
  error: string,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): HTTPException {
  return new HTTPException(status, {
    res: new Response(JSON.stringify({ error, ...extra }), {
      status,
      headers: { 'content-type': 'application/json', ...headers },
    }),
  });
}

/** zod problems as one line: `path: message; ...`. */
export function issues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
}

/** Parses a request body as JSON against a schema, or throws a 400 naming what is wrong. Empty body: {}. */
export function parseJsonBody<T>(raw: string | Uint8Array, schema: z.ZodType<T>): T {
  const text = typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8');
  let json: unknown = {};
  if (text.trim() !== '') {
    try {
      json = JSON.parse(text);
    } catch {
      throw jsonError(400, 'body is not JSON');
    }
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw jsonError(400, `bad request: ${issues(parsed.error)}`);
  return parsed.data;
}

/** Text a client sent, cut for echoing in an error. */
export const short = (s: string | undefined) => (s ?? '').slice(0, 64);
