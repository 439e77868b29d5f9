import { randomUUID } from 'node:crypto';
import { and, eq } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OutboxDispatcher } from '../../activities/notify/dispatcher.js';
import { sendOperatorEmail } from '../../activities/notify/email.js';
import { enqueueEvent } from '../../activities/notify/outbox.js';
import { deliverWebhook, verifyWebhookSignature } from '../../activities/notify/webhook.js';
import type { NotificationConfig, PkiConfig } from '../../config/profile-types.js';
import type { DatabaseHandle } from '../../db/client.js';
import { eventDeliveries } from '../../db/schema.js';
import type { PkiEvent } from '../../workflows/activities.js';
import { type SmtpSink, startSmtpSink } from '../fakes/smtp-sink.js';
import { startWebhookReceiver, type WebhookReceiver } from '../fakes/webhook-receiver.js';
import { openOwnDatabase } from '../support/own-database.js';

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

describe('the event outbox and its dispatcher', () => {
  // A database of its own: a dispatcher drains every pending delivery, other test files' included.
  let own: Awaited<ReturnType<typeof openOwnDatabase>>;
  let handle: DatabaseHandle;
  beforeAll(async () => {
    own = await openOwnDatabase('notify', 4);
    handle = own.handle;
  });
  afterAll(async () => {
    await own?.drop();
  });

  async function setup(failTimes = 0, deadLetterAfterSeconds = 3600) {
    const receivers = [
      await track(startWebhookReceiver({ secret: SECRET, failTimes })),
      await track(startWebhookReceiver({ secret: 'second-secret' })),
    ];
    const sink = await track(startSmtpSink());
    const profile = `outbox-${randomUUID().slice(0, 8)}`;
    const notifications: NotificationConfig = {
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
    const config = {
      profiles: [{ name: profile, notifications }],
      events: { deadLetterAfterSeconds, maxRetryIntervalSeconds: 1, timeoutMs: 2000 },
    } as unknown as PkiConfig;
    const env = { HOOK_ONE_SECRET: SECRET, HOOK_TWO_SECRET: 'second-secret' };
    const dispatcher = new OutboxDispatcher({ db: handle.db, config, env, log: () => {} });
    const enqueue = (type: PkiEvent['type']) => {
      const e = { ...event(type), profile };
      return enqueueEvent(handle.db, notifications, e).then(() => e);
    };
    /** Rounds until nothing is due (retries made due at once). */
    const drain = async () => {
      for (let round = 0; round < 10; round++) {
        await handle.db
          .update(eventDeliveries)
          .set({ nextAttemptAt: new Date(0) })
          .where(eq(eventDeliveries.state, 'pending'));
        if ((await dispatcher.runOnce()) === 0) return;
      }
    };
    const states = async (id: string) =>
      (await handle.db.select().from(eventDeliveries).where(eq(eventDeliveries.eventId, id)))
        .map((d) => `${d.target === 'email' ? 'email' : 'webhook'}:${d.state}`)
        .sort();
    return { receivers, sink, enqueue, dispatcher, drain, states };
  }

  it('delivers to every webhook, and e-mails only operator-facing events', async () => {
    const { receivers, sink, enqueue, drain } = await setup();
    for (const type of ['enrollment.succeeded', 'enrollment.failed', 'certificate.renewal_due'] as const)
      await enqueue(type);
    await drain();
    expect(sink.messages).toHaveLength(0);
    await enqueue('enrollment.escalated');
    await enqueue('certificate.renewal_overdue');
    await drain();
    expect(sink.messages).toHaveLength(2);
    // Headers unfolded: a long subject may be folded onto a second line. The dispatcher sends in
    // parallel: the two messages may arrive in either order.
    const subjects = sink.messages.map((m) => m.raw.replace(/\r?\n[ \t]+/g, ' '));
    const escalated = subjects.findIndex((raw) =>
      /^Subject: \[device-pki\] enrollment\.escalated: outbox-\w+\/laptop-001\r?$/m.test(raw),
    );
    expect(escalated, subjects.join('\n----\n')).toBeGreaterThanOrEqual(0);
    expect(subjects.some((raw) => /^Subject: \[device-pki\] certificate\.renewal_overdue: /m.test(raw))).toBe(
      true,
    );
    expect(sink.messages[escalated]!.raw).toContain('enroll/default/tx-1');
    for (const r of receivers) {
      expect(r.deliveries).toHaveLength(5);
      expect(r.deliveries.every((d) => d.verified && d.status === 204)).toBe(true);
    }
  });

  it('keeps retrying a failing target with the same delivery id while the others are done', async () => {
    const { receivers, sink, enqueue, dispatcher, drain, states } = await setup(2);
    const e = await enqueue('enrollment.escalated');
    await dispatcher.runOnce();
    expect(await states(e.id)).toEqual(['email:delivered', 'webhook:delivered', 'webhook:pending']);
    expect(receivers[1]!.deliveries).toHaveLength(1);
    expect(sink.messages).toHaveLength(1);
    await drain();
    expect(await states(e.id)).toEqual(['email:delivered', 'webhook:delivered', 'webhook:delivered']);
    expect(receivers[0]!.deliveries.map((d) => d.headers['x-pki-delivery'])).toEqual([e.id, e.id, e.id]);
  });

  it('turns a delivery that keeps failing past the dead-letter time into a dead letter, naming why', async () => {
    const { enqueue, dispatcher, states } = await setup(1000, 0);
    const e = await enqueue('enrollment.succeeded');
    await dispatcher.runOnce();
    expect(await states(e.id)).toEqual(['webhook:dead', 'webhook:delivered']);
    const [dead] = await handle.db
      .select()
      .from(eventDeliveries)
      .where(and(eq(eventDeliveries.eventId, e.id), eq(eventDeliveries.state, 'dead')));
    expect(dead?.lastError).toMatch(/answered 500/);
  });

  it('names the missing secret when a webhook secret is not in the environment', async () => {
    const { enqueue } = await setup();
    const e = await enqueue('enrollment.succeeded');
    const bare = new OutboxDispatcher({
      db: handle.db,
      config: {
        profiles: [
          {
            name: e.profile,
            notifications: { webhooks: [{ url: 'http://127.0.0.1:9/x', secretEnv: 'HOOK_ONE_SECRET' }] },
          },
        ],
        events: { deadLetterAfterSeconds: 3600, maxRetryIntervalSeconds: 1, timeoutMs: 1000 },
      } as unknown as PkiConfig,
      env: {},
      log: () => {},
    });
    await bare.runOnce();
    const rows = await handle.db.select().from(eventDeliveries).where(eq(eventDeliveries.eventId, e.id));
    expect(rows.some((r) => /HOOK_ONE_SECRET|no longer configured/.test(r.lastError ?? ''))).toBe(true);
  });
});
