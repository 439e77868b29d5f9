/**
 * The one way MDM adapters talk HTTP: global fetch under a deadline, and every infrastructure
 * failure (DNS, refused, timeout, unreadable body) turned into MdmUnavailableError. Adapters THROW
 * it (verifier.ts contract) so Temporal retries and, past the budget, the enrollment escalates.
 */

/** An MDM (or its identity provider) could not give a definitive answer: retry later. */
export class MdmUnavailableError extends Error {
  override name = 'MdmUnavailableError';
}

export const DEFAULT_TIMEOUT_MS = 10_000;

export interface HttpReply {
  status: number;
  contentType: string;
  text: string;
}

export async function send(
  url: string,
  init: { method: 'GET' | 'POST'; headers?: Record<string, string>; body?: string },
  opts: { timeoutMs: number; what: string },
): Promise<HttpReply> {
  try {
    const res = await fetch(url, {
      ...init,
      // The body read is under the same deadline: a server that stalls mid-body is a timeout too.
      signal: AbortSignal.timeout(opts.timeoutMs),
      // Never carry a bearer token to wherever a redirect points.
      redirect: 'error',
    });
    return { status: res.status, contentType: res.headers.get('content-type') ?? '', text: await res.text() };
  } catch (err) {
    throw new MdmUnavailableError(`${opts.what}: ${describeFetchError(err, opts.timeoutMs)}`);
  }
}

/** The JSON body of a reply; anything else (an HTML error page from a proxy...) is not an answer. */
export function jsonBody(reply: HttpReply, what: string): unknown {
  try {
    return JSON.parse(reply.text);
  } catch {
    throw new MdmUnavailableError(
      `${what}: HTTP ${reply.status} with a body that is not JSON (${reply.contentType || 'no content type'})`,
    );
  }
}

/** HTTP status as an error message, with the start of the body (MDM errors explain themselves there). */
export function statusError(reply: HttpReply, what: string): MdmUnavailableError {
  const excerpt = reply.text.replace(/\s+/g, ' ').trim().slice(0, 200);
  return new MdmUnavailableError(`${what}: HTTP ${reply.status}${excerpt ? ` ${excerpt}` : ''}`);
}

export const isSuccess = (status: number) => status >= 200 && status < 300;

function describeFetchError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error) {
    if (err.name === 'TimeoutError' || err.name === 'AbortError') return `no answer within ${timeoutMs} ms`;
    // undici wraps the socket error (ENOTFOUND, ECONNREFUSED...) as `cause`.
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    if (cause) return `${err.message} (${cause.code ?? cause.message ?? 'unknown cause'})`;
    return err.message;
  }
  return String(err);
}
