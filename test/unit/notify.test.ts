import { afterEach, describe, expect, it } from 'vitest';
import { sendOperatorEmail } from '../../activities/notify/email.js';
import { publishEvent } from '../../activities/notify/index.js';
import { deliverWebhook, verifyWebhookSignature } from '../../activities/notify/webhook.js';
import type { PkiEvent } from '../../activities/types.js';
import type { NotificationConfig } from '../../config/profile-types.js';
import { type SmtpSink, startSmtpSink } from '../fakes/smtp-sink.js';
import { startWebhookReceiver, type WebhookReceiver } from '../fakes/webhook-receiver.js';

const SECRET = 'whsec-test-1';

function event(
  type: PkiEvent['type'],
  id = `enroll/default/tx-${Math.random().toString(36).slice(2)}#${type}`,
): PkiEvent {
  return {
    type,
    id,
    at: '2025-01-01T00:00:00.000Z',
    profile: 'default',
    deviceId: 'laptop-001',
    workflowId: 'enroll/default/tx-1',
    data: { reason: 'Atlas unavailable' },
  };
}

const open: Array<{ close(): Promise<void> }> = [];
async function track<T extends { close(): Promise<void> }>(p: Promise<T>): Promise<T> {
  const v = await p;
  open.push(v);
  return v;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((o) => o.close()));
});

describe('webhooks', () => {
  it('signs deliveries so the receiver verifies them, and headers name the event', async () => {
    const receiver: WebhookReceiver = await track(startWebhookReceiver({ secret: SECRET }));
    const e = event('enrollment.succeeded');
    await deliverWebhook({ url: receiver.url, secret: SECRET }, e);
    expect(receiver.deliveries).toHaveLength(1);
    const d = receiver.deliveries[0]!;
    expect(d.verified).toBe(true);
    expect(d.headers['x-pki-event']).toBe('enrollment.succeeded');
    expect(d.headers['x-pki-delivery']).toBe(e.id);
    expect(JSON.parse(d.body)).toEqual(e);

    // The verifier refuses a wrong secret, a changed body and a stale timestamp.
    expect(verifyWebhookSignature('other', d.headers, d.body, 300)).toBe(false);
    expect(verifyWebhookSignature(SECRET, d.headers, `${d.body} `, 300)).toBe(false);
    const later = new Date((Number(d.headers['x-pki-timestamp']) + 301) * 1000);
    expect(verifyWebhookSignature(SECRET, d.headers, d.body, 300, later)).toBe(false);
  });

  it('throws until the receiver acknowledges, with the same delivery id each time', async () => {
    const receiver = await track(startWebhookReceiver({ secret: SECRET, failTimes: 2 }));
    const e = event('certificate.renewal_due');
    const target = { url: receiver.url, secret: SECRET };
    await expect(deliverWebhook(target, e)).rejects.toThrow(/500/);
    await expect(deliverWebhook(target, e)).rejects.toThrow(/500/);
    await expect(deliverWebhook(target, e)).resolves.toEqual({ status: 204 });
    expect(receiver.deliveries.map((d) => d.status)).toEqual([500, 500, 204]);
    expect(new Set(receiver.deliveries.map((d) => d.headers['x-pki-delivery']))).toEqual(new Set([e.id]));
    expect(receiver.deliveries.every((d) => d.verified)).toBe(true);
  });

  it('throws when nobody listens', async () => {
    const receiver = await startWebhookReceiver({ secret: SECRET });
    const url = receiver.url;
    await receiver.close();
    await expect(deliverWebhook({ url, secret: SECRET }, event('certificate.expired'))).rejects.toThrow(
      /webhook http:\/\/127\.0\.0\.1/,
    );
  });
});

describe('operator e-mail', () => {
  it('arrives at the SMTP server with subject and body', async () => {
    const sink: SmtpSink = await track(startSmtpSink());
    await sendOperatorEmail(
      {
        smtpHost: sink.host,
        smtpPort: sink.port,
        secure: false,
        from: 'pki@example.test',
        to: ['ops@example.test'],
      },
      { subject: 'Enrollment escalated', text: 'Please look at enroll/default/tx-1' },
    );
    expect(sink.messages).toHaveLength(1);
    const m = sink.messages[0]!;
    expect(m.from).toBe('pki@example.test');
    expect(m.to).toEqual(['ops@example.test']);
    expect(m.raw).toMatch(/^Subject: Enrollment escalated$/m);
    expect(m.raw).toContain('Please look at enroll/default/tx-1');
  });

  it('throws when the SMTP server is unreachable', async () => {
    const sink = await startSmtpSink();
    await sink.close();
    await expect(
      sendOperatorEmail(
        {
          smtpHost: sink.host,
          smtpPort: sink.port,
          secure: false,
          from: 'pki@example.test',
          to: ['o@x.test'],
        },
        { subject: 's', text: 't' },
      ),
    ).rejects.toThrow();
  });
});

describe('publishEvent', () => {
  async function setup(failTimes = 0) {
    const receivers = [
      await track(startWebhookReceiver({ secret: SECRET, failTimes })),
      await track(startWebhookReceiver({ secret: 'second-secret' })),
    ];
    const sink = await track(startSmtpSink());
    const config: NotificationConfig = {
      webhooks: [
        { url: receivers[0]!.url, secretEnv: 'HOOK_ONE_SECRET' },
        { url: receivers[1]!.url, secretEnv: 'HOOK_TWO_SECRET' },
      ],
      email: {
        smtpHost: sink.host,
        smtpPort: sink.port,
        secure: false,
        from: 'pki@example.test',
        to: ['ops@example.test'],
      },
    };
    const env = { HOOK_ONE_SECRET: SECRET, HOOK_TWO_SECRET: 'second-secret' };
    return { receivers, sink, config, env };
  }

  it('sends every webhook, and e-mail only for operator-facing events', async () => {
    const { receivers, sink, config, env } = await setup();
    for (const type of ['enrollment.succeeded', 'enrollment.failed', 'certificate.renewal_due'] as const) {
      await publishEvent(config, event(type), env);
    }
    expect(sink.messages).toHaveLength(0);
    await publishEvent(config, event('enrollment.escalated'), env);
    await publishEvent(config, event('certificate.renewal_overdue'), env);
    expect(sink.messages).toHaveLength(2);
    expect(sink.messages[0]!.raw).toMatch(
      /^Subject: \[device-pki\] enrollment\.escalated: default\/laptop-001$/m,
    );
    expect(sink.messages[0]!.raw).toContain('enroll/default/tx-1');
    expect(sink.messages[1]!.raw).toContain('certificate.renewal_overdue');
    for (const r of receivers) {
      expect(r.deliveries).toHaveLength(5);
      expect(r.deliveries.every((d) => d.verified && d.status === 204)).toBe(true);
    }
  });

  it('attempts every target when one fails, then throws so Temporal retries', async () => {
    const { receivers, sink, config, env } = await setup(1);
    const e = event('enrollment.escalated');
    await expect(publishEvent(config, e, env)).rejects.toThrow(
      /not delivered: webhook http:\/\/127\.0\.0\.1:\d+: /,
    );
    expect(receivers[1]!.deliveries).toHaveLength(1);
    expect(sink.messages).toHaveLength(1);
    await publishEvent(config, e, env);
    expect(receivers[0]!.deliveries.map((d) => d.headers['x-pki-delivery'])).toEqual([e.id, e.id]);
  });

  it('refuses clearly when a webhook secret is not in the environment', async () => {
    const { config } = await setup();
    await expect(publishEvent(config, event('enrollment.succeeded'), {})).rejects.toThrow(/HOOK_ONE_SECRET/);
  });
});
