/**
 * Signed JSON webhooks. The signature covers the timestamp and the exact body bytes, so a receiver
 * can refuse both tampering and replays of old deliveries; X-PKI-Delivery (the event id) stays the
 * same on every retry, so receivers de-duplicate on it.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { PkiEvent } from '../../workflows/activities.js';

export interface WebhookTarget {
  url: string;
  /** HMAC-SHA256 key, used as the raw UTF-8 string. */
  secret: string;
}

export interface DeliverOptions {
  timeoutMs?: number;
  now?: () => Date;
}

const DEFAULT_TIMEOUT_MS = 10_000;

export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** Resolves only when the receiver acknowledged (2xx); throws otherwise so Temporal retries. */
export async function deliverWebhook(
  target: WebhookTarget,
  event: PkiEvent,
  opts: DeliverOptions = {},
): Promise<{ status: number }> {
  const body = JSON.stringify(event);
  const timestamp = String(Math.floor((opts.now?.() ?? new Date()).getTime() / 1000));
  let res: Response;
  try {
    res = await fetch(target.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-pki-event': event.type,
        'x-pki-delivery': event.id,
        'x-pki-timestamp': timestamp,
        'x-pki-signature': webhookSignature(target.secret, timestamp, body),
      },
      body,
      redirect: 'error',
      signal: AbortSignal.timeout(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    });
  } catch (e) {
    throw new Error(`webhook ${redact(target.url)}: ${(e as Error).message}`);
  }
  // Drain the body so the connection is released; its content does not matter.
  await res.arrayBuffer().catch(() => undefined);
  if (res.status < 200 || res.status > 299) {
    throw new Error(`webhook ${redact(target.url)} answered ${res.status}: delivery not acknowledged`);
  }
  return { status: res.status };
}

type HeaderBag = Headers | Record<string, string | string[] | undefined>;

/** For receivers: true when the signature matches and the timestamp is within the tolerance. */
export function verifyWebhookSignature(
  secret: string,
  headers: HeaderBag,
  body: string | Uint8Array,
  toleranceSeconds: number,
  now: Date = new Date(),
): boolean {
  const timestamp = read(headers, 'x-pki-timestamp');
  const signature = read(headers, 'x-pki-signature');
  if (!timestamp || !signature || !/^\d+$/.test(timestamp)) return false;
  if (Math.abs(now.getTime() / 1000 - Number(timestamp)) > toleranceSeconds) return false;
  const text = typeof body === 'string' ? body : Buffer.from(body).toString('utf8');
  const expected = Buffer.from(webhookSignature(secret, timestamp, text));
  const presented = Buffer.from(signature);
  return presented.length === expected.length && timingSafeEqual(presented, expected);
}

function read(headers: HeaderBag, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : headers[key];
  return Array.isArray(value) ? value[0] : value;
}

/** URLs may carry tokens in their query: keep them out of error messages (and Temporal history). */
function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}
