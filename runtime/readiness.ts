/**
 * Liveness and readiness of a product process. `/healthz` says the process answers; `/readyz`
 * says it can do its job now: Temporal, the database and its HSM tokens each answered within a
 * deadline, and it is not shutting down. A load balancer sends devices only to ready replicas; an
 * orchestrator restarts a replica that stops being live, not one that is merely not ready (a
 * Postgres restart makes every replica unready for seconds; restarting them all would not help).
 */

import type { WorkflowService } from '@temporalio/client';
import { sql } from 'drizzle-orm';
import { Hono } from 'hono';
import type { Database } from '../db/client.js';
import type { TokenSet } from '../hsm/token-set.js';
import { type Listener, listenOn } from './http-listener.js';
import { metricsResponse } from './metrics/exposition.js';

export interface DependencyCheck {
  name: string;
  /** Resolves when the dependency answered; rejects (or outlives the deadline) when it did not. */
  check(): Promise<unknown>;
}

export interface ReadinessReport {
  ready: boolean;
  draining: boolean;
  checks: Record<string, { ok: boolean; ms: number; error?: string }>;
}

export class Readiness {
  private draining = false;

  constructor(
    private readonly checks: DependencyCheck[],
    private readonly deadlineMs = 2_000,
  ) {}

  /** From now on the process reports not ready (SIGTERM): new work goes to other replicas. */
  drain(): void {
    this.draining = true;
  }

  async report(): Promise<ReadinessReport> {
    const results = await Promise.all(this.checks.map((c) => this.run(c)));
    const checks = Object.fromEntries(results.map(({ name, ...r }) => [name, r]));
    return {
      ready: !this.draining && results.every((r) => r.ok),
      draining: this.draining,
      checks,
    };
  }

  private async run(dependency: DependencyCheck) {
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        dependency.check(),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${this.deadlineMs} ms`)),
            this.deadlineMs,
          );
        }),
      ]);
      return { name: dependency.name, ok: true, ms: Math.round(performance.now() - started) };
    } catch (err) {
      return {
        name: dependency.name,
        ok: false,
        ms: Math.round(performance.now() - started),
        error: err instanceof Error ? err.message : String(err),
      };
    } finally {
      clearTimeout(timer);
    }
  }
}

/** What a product process depends on: its Temporal frontend, its database, each HSM token it opened. */
export function dependencyChecks(opts: {
  /** A Client or a worker's NativeConnection: anything that reaches the frontend. */
  temporal: { workflowService: Pick<WorkflowService, 'getSystemInfo'> };
  db: Database;
  tokens: TokenSet;
}): DependencyCheck[] {
  return [
    { name: 'temporal', check: () => opts.temporal.workflowService.getSystemInfo({}) },
    { name: 'database', check: () => opts.db.execute(sql`select 1`) },
    ...opts.tokens
      .roles()
      .map((role) => ({ name: `hsm:${role}`, check: () => opts.tokens.get(role).ping() })),
  ];
}

/** `/healthz` (live) and `/readyz` (ready: 200, or 503 naming what is missing). */
export function healthRoutes(readiness: Readiness | undefined): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.text('ok'));
  app.get('/readyz', async (c) => {
    if (!readiness) return c.json({ ready: true, draining: false, checks: {} });
    const report = await readiness.report();
    return c.json(report, report.ready ? 200 : 503);
  });
  return app;
}

/**
 * A worker's own small listener (HEALTH_PORT): workers serve no API, but orchestrators and the
 * cluster supervisor still need to ask them whether they are live and ready, and Prometheus scrapes
 * the worker's own metrics (runtime/metrics/process.ts) at /metrics. Like /readyz it asks for no
 * credential: bind it (HEALTH_HOST) where only the orchestrator and Prometheus reach it.
 */
export function serveHealth(listen: { host: string; port: number }, readiness: Readiness): Promise<Listener> {
  const app = healthRoutes(readiness);
  app.get('/metrics', (c) => metricsResponse(c));
  return listenOn(app, listen);
}
