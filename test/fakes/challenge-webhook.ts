/**
 * A fake step-ca style SCEPCHALLENGE webhook server: it checks the webhook id and the HMAC-SHA256
 * signature over the raw body itself (as a real receiver must), then allows or denies per challenge.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { type FailureMode, FailureQueue, failureReply, json, startFakeServer } from './server.js';

export interface FakeWebhook {
  url: string;
  close(): Promise<void>;
  /** Bodies of the calls, parsed, with whether their signature verified. */
  calls: Array<{ body: Record<string, unknown>; signatureValid: boolean; webhookId: string | undefined }>;
  knobs: {
    /**
     * challenge -> decision; an unlisted challenge is denied with "unknown challenge". An allow may
     * name the identity it vouches for (step-ca's `data`).
     */
    decisions: Map<
      string,
      { allow: true; data?: Record<string, unknown> } | { allow: false; message: string }
    >;
    slowMs: number;
    failNext(mode: FailureMode, times?: number): void;
  };
}

export async function startFakeWebhook(opts: {
  webhookId: string;
  secretBase64: string;
}): Promise<FakeWebhook> {
  const secret = Buffer.from(opts.secretBase64, 'base64');
  const failures = new FailureQueue<'webhook'>();
  const calls: FakeWebhook['calls'] = [];
  const knobs: FakeWebhook['knobs'] = {
    decisions: new Map(),
    slowMs: 2000,
    failNext: (mode, times) => failures.add('webhook', mode, times),
  };
  const server = await startFakeServer((req) => {
    if (req.method !== 'POST') return json(405, { error: 'POST only' });
    const expected = createHmac('sha256', secret).update(req.body, 'utf8').digest();
    const given = Buffer.from(String(req.headers['x-smallstep-signature'] ?? ''), 'hex');
    const signatureValid = given.length === expected.length && timingSafeEqual(given, expected);
    const webhookId = req.headers['x-smallstep-webhook-id'] as string | undefined;
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(req.body);
    } catch {}
    calls.push({ body, signatureValid, webhookId });
    const mode = failures.take('webhook');
    if (mode) return failureReply(mode, knobs.slowMs);
    if (!signatureValid || webhookId !== opts.webhookId)
      return json(401, { error: 'bad signature or webhook id' });
    const decision = knobs.decisions.get(String(body.scepChallenge ?? ''));
    if (decision?.allow) return json(200, { allow: true, data: decision.data ?? {} });
    return json(200, {
      allow: false,
      error: { code: 'denied', message: decision ? decision.message : 'unknown challenge' },
    });
  });
  return { url: server.url, close: server.close, calls, knobs };
}
