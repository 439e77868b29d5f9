/**
 * Delivers the event outbox (outbox.ts): claims due deliveries (FOR UPDATE SKIP LOCKED, then a lease,
 * so any number of `pki` worker processes share the work without delivering one twice at a time),
 * sends each to its webhook or the operator e-mail, and records the result: delivered, retried later
 * with capped exponential back-off, or dead once it has been pending longer than the configured
 * dead-letter time. At least once: a receiver may see a delivery id again and de-duplicates on it.
 */

import { and, asc, eq, inArray, isNull, lt, lte, or, sql } from 'drizzle-orm';
import { secretFromEnv } from '../../config/load.js';
import type { PkiConfig } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { eventDeliveries, eventOutbox } from '../../db/schema.js';
import { componentLogger } from '../../runtime/log.js';
import type { PkiEvent } from '../../workflows/activities.js';
import { sendOperatorEmail } from './email.js';
import { operatorMessage } from './messages.js';
import { EMAIL_TARGET, notificationsOf, webhookTarget } from './outbox.js';
import { deliverWebhook } from './webhook.js';

export interface DispatcherOptions {
  db: Database;
  config: PkiConfig;
  env?: NodeJS.ProcessEnv;
  /** Pause between polls when nothing was due. Default 500 ms. */
  pollIntervalMs?: number;
  /** Deliveries claimed (and sent concurrently) per round. Default 20. */
  batchSize?: number;
  log?: (line: string) => void;
}

interface Claimed {
  eventId: string;
  target: string;
  attempts: number;
  pendingSince: Date;
}

export type DeliveryResult = { ok: true } | { ok: false; error: string };

export class OutboxDispatcher {
  private running: Promise<void> | undefined;
  private stopping = false;
  private wake: (() => void) | undefined;
  private readonly env: NodeJS.ProcessEnv;
  private readonly log: (line: string) => void;

  constructor(private readonly opts: DispatcherOptions) {
    this.env = opts.env ?? process.env;
    this.log = opts.log ?? ((line) => componentLogger('outbox').warn(line));
  }

  /** Starts the delivery loop (idempotent). */
  start(): void {
    this.stopping = false;
    this.running ??= this.loop().finally(() => {
      this.running = undefined;
    });
  }

  /** Stops after the round in flight (its deliveries are recorded, none is abandoned mid-way). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.running;
  }

  /** Claims and delivers one round; returns how many deliveries it handled. */
  async runOnce(): Promise<number> {
    const claimed = await this.claim();
    if (claimed.length === 0) return 0;
    const events = await this.opts.db
      .select({ id: eventOutbox.id, payload: eventOutbox.payload })
      .from(eventOutbox)
      .where(
        inArray(
          eventOutbox.id,
          claimed.map((c) => c.eventId),
        ),
      );
    const payloadOf = new Map(events.map((e) => [e.id, e.payload as unknown as PkiEvent]));
    await Promise.all(
      claimed.map(async (delivery) => {
        const event = payloadOf.get(delivery.eventId);
        const result: DeliveryResult = event
          ? await this.deliver(event, delivery.target)
          : { ok: false, error: 'event row missing' };
        await this.record(delivery, result);
      }),
    );
    return claimed.length;
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      let handled = 0;
      try {
        handled = await this.runOnce();
      } catch (err) {
        // The database is away: keep trying, deliveries wait in the outbox meanwhile.
        this.log(`round failed: ${(err as Error).message}`);
      }
      if (handled === 0 && !this.stopping)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.opts.pollIntervalMs ?? 500);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
    }
  }

  private async claim(): Promise<Claimed[]> {
    const leaseMs = this.opts.config.events.timeoutMs * 2 + 5_000;
    return this.opts.db.transaction(async (tx) => {
      const due = await tx
        .select({
          eventId: eventDeliveries.eventId,
          target: eventDeliveries.target,
          attempts: eventDeliveries.attempts,
          pendingSince: eventDeliveries.pendingSince,
        })
        .from(eventDeliveries)
        .where(
          and(
            eq(eventDeliveries.state, 'pending'),
            lte(eventDeliveries.nextAttemptAt, sql`now()`),
            or(isNull(eventDeliveries.leaseUntil), lt(eventDeliveries.leaseUntil, sql`now()`)),
          ),
        )
        .orderBy(asc(eventDeliveries.nextAttemptAt))
        .limit(this.opts.batchSize ?? 20)
        .for('update', { skipLocked: true });
      if (due.length === 0) return [];
      await tx
        .update(eventDeliveries)
        .set({
          leaseUntil: sql`now() + make_interval(secs => ${leaseMs / 1000})`,
          attempts: sql`${eventDeliveries.attempts} + 1`,
        })
        .where(or(...due.map((d) => key(d))));
      return due.map((d) => ({ ...d, attempts: d.attempts + 1 }));
    });
  }

  private async deliver(event: PkiEvent, target: string): Promise<DeliveryResult> {
    const notifications = notificationsOf(this.opts.config, event);
    if (!notifications) return { ok: false, error: `profile ${event.profile} is no longer configured` };
    const { webhooks, email } = notifications;
    const timeoutMs = this.opts.config.events.timeoutMs;
    try {
      if (target === EMAIL_TARGET) {
        if (!email) return { ok: false, error: 'the profile no longer has operator e-mail' };
        await sendOperatorEmail(email, operatorMessage(event), this.env);
        return { ok: true };
      }
      const hook = webhooks.find((h) => webhookTarget(h.url) === target);
      if (!hook) return { ok: false, error: 'the webhook is no longer configured for this profile' };
      await deliverWebhook({ url: hook.url, secret: secretFromEnv(hook.secretEnv, this.env) }, event, {
        timeoutMs,
      });
      return { ok: true };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
  }

  private async record(delivery: Claimed, result: DeliveryResult): Promise<void> {
    const { events } = this.opts.config;
    if (result.ok) {
      await this.opts.db
        .update(eventDeliveries)
        .set({ state: 'delivered', deliveredAt: sql`now()`, leaseUntil: null, lastError: null })
        .where(key(delivery));
      return;
    }
    const dead = Date.now() - delivery.pendingSince.getTime() >= events.deadLetterAfterSeconds * 1000;
    const backoffSeconds = Math.min(2 ** Math.min(delivery.attempts - 1, 20), events.maxRetryIntervalSeconds);
    await this.opts.db
      .update(eventDeliveries)
      .set(
        dead
          ? { state: 'dead', deadAt: sql`now()`, leaseUntil: null, lastError: result.error.slice(0, 1000) }
          : {
              nextAttemptAt: sql`now() + make_interval(secs => ${backoffSeconds})`,
              leaseUntil: null,
              lastError: result.error.slice(0, 1000),
            },
      )
      .where(key(delivery));
    if (dead) this.log(`event ${delivery.eventId} to ${delivery.target} is a dead letter: ${result.error}`);
  }
}

const key = (d: { eventId: string; target: string }) =>
  and(eq(eventDeliveries.eventId, d.eventId), eq(eventDeliveries.target, d.target));
