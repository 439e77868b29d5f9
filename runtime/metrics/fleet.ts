/**
 * Fleet metrics, counted at scrape time from Postgres and Temporal visibility: enrollments by
 * outcome, certificates by state, the earliest expiry, CRL nextUpdate, open escalations. They are
 * the same whichever API replica Prometheus asks and survive restarts (a process-local counter
 * would count only what that replica saw). One scrape reads each source once (a few indexed
 * aggregates and one visibility count per profile); a source that does not answer leaves its
 * metrics out and sets pki_metrics_source_up{source} to 0 instead of failing the scrape.
 */
import type { Client } from '@temporalio/client';
import { and, count, gt, isNull, min, sql } from 'drizzle-orm';
import { Counter, Gauge, Registry } from 'prom-client';
import type { PkiConfig } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { certificates, crls, devices, enrollments } from '../../db/schema.js';
import { enrollmentStateQuery } from '../../workflows/definitions.js';
import { componentLogger } from '../log.js';

export interface FleetSources {
  db: Database;
  temporal: Client;
  config: PkiConfig;
}

type Rows<T> = { ok: true; rows: T } | { ok: false };

interface FleetSnapshot {
  enrollments: Rows<Array<{ profile: string; verifier: string | null; status: string; n: number }>>;
  certificates: Rows<Array<{ profile: string; state: string; n: number }>>;
  earliestExpiry: Rows<Array<{ profile: string; notAfter: Date | null }>>;
  crls: Rows<Array<{ issuingCa: string; nextUpdate: Date }>>;
  escalations: Rows<Array<{ profile: string; open: number; oldestSince: number | undefined }>>;
}

/** Escalations whose start time is read (state query) per profile and scrape: the work list's head. */
const ESCALATIONS_INSPECTED = 100;

/** A registry whose every metric is computed from the sources when scraped. */
export function fleetRegistry(sources: FleetSources): Registry {
  const registry = new Registry();
  // All the metrics of one scrape share one read of each source.
  let current: { at: number; snapshot: Promise<FleetSnapshot> } | undefined;
  const snapshot = () => {
    if (!current || Date.now() - current.at > 1_000)
      current = { at: Date.now(), snapshot: readFleet(sources) };
    return current.snapshot;
  };

  new Counter({
    name: 'pki_enrollments_total',
    help: 'Enrollments recorded (enrollments table), by profile, verifier that decided the identity, and outcome (issued, failed)',
    labelNames: ['profile', 'verifier', 'outcome'] as const,
    registers: [registry],
    async collect() {
      const found = rowsOf((await snapshot()).enrollments);
      this.reset();
      for (const r of found)
        this.inc(
          { profile: r.profile, verifier: r.verifier ?? 'unrecorded', outcome: outcomeOf(r.status) },
          r.n,
        );
    },
  });
  /** A gauge whose samples are computed from this scrape's snapshot. */
  const gauge = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    samples: (s: FleetSnapshot) => Array<[Record<L, string>, number]>,
  ) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        const found = samples(await snapshot());
        this.reset();
        for (const [labels, value] of found) this.set(labels, value);
      },
    });

  gauge(
    'pki_certificates',
    'Certificates on record by profile and state (valid, expired: past notAfter and never revoked, revoked)',
    ['profile', 'state'],
    (s) => rowsOf(s.certificates).map((r) => [{ profile: r.profile, state: r.state }, r.n]),
  );
  gauge(
    'pki_certificate_earliest_expiry_timestamp_seconds',
    "The earliest notAfter (unix seconds) among devices' current, unexpired certificates, per profile (blocked devices excluded)",
    ['profile'],
    (s) =>
      rowsOf(s.earliestExpiry).flatMap((r) =>
        r.notAfter ? [[{ profile: r.profile }, seconds(new Date(r.notAfter))]] : [],
      ),
  );
  gauge(
    'pki_crl_next_update_timestamp_seconds',
    'nextUpdate (unix seconds) of the latest CRL of each issuing CA',
    ['ca'],
    (s) => rowsOf(s.crls).map((r) => [{ ca: r.issuingCa }, seconds(new Date(r.nextUpdate))]),
  );
  gauge(
    'pki_escalations_open',
    'Enrollments waiting for an operator after an infrastructure failure (PkiStatus="Escalated", running), per profile',
    ['profile'],
    (s) => rowsOf(s.escalations).map((r) => [{ profile: r.profile }, r.open]),
  );
  gauge(
    'pki_escalation_oldest_timestamp_seconds',
    `When (unix seconds) the oldest open escalation of each profile began (among the ${ESCALATIONS_INSPECTED} listed first); absent when none is open`,
    ['profile'],
    (s) =>
      rowsOf(s.escalations).flatMap((r) =>
        r.oldestSince !== undefined ? [[{ profile: r.profile }, r.oldestSince]] : [],
      ),
  );
  gauge(
    'pki_metrics_source_up',
    'Whether this scrape could read a source of the fleet metrics (1) or not (0: its metrics are missing)',
    ['source'],
    (s) => [
      [
        { source: 'database' },
        s.enrollments.ok && s.certificates.ok && s.earliestExpiry.ok && s.crls.ok ? 1 : 0,
      ],
      [{ source: 'temporal' }, s.escalations.ok ? 1 : 0],
    ],
  );
  return registry;
}

async function readFleet({ db, temporal, config }: FleetSources): Promise<FleetSnapshot> {
  const [enrollmentRows, certificateRows, earliestExpiry, crlRows, escalations] = await Promise.all([
    rows(() =>
      db
        .select({
          profile: enrollments.profile,
          verifier: enrollments.verifier,
          status: enrollments.status,
          n: count(),
        })
        .from(enrollments)
        .groupBy(enrollments.profile, enrollments.verifier, enrollments.status),
    ),
    rows(async () => {
      const state = sql<string>`case when ${certificates.status} = 'revoked' then 'revoked'
        when ${certificates.notAfter} <= now() then 'expired' else 'valid' end`;
      const found = await db
        .select({ profile: certificates.profile, state, n: count() })
        .from(certificates)
        .groupBy(certificates.profile, state);
      return found.map((r) => ({ ...r, n: Number(r.n) }));
    }),
    rows(() =>
      db
        .select({ profile: devices.profile, notAfter: min(devices.certificateNotAfter) })
        .from(devices)
        .where(and(gt(devices.certificateNotAfter, sql`now()`), isNull(devices.blockedAt)))
        .groupBy(devices.profile),
    ),
    rows(() => db.select({ issuingCa: crls.issuingCa, nextUpdate: crls.nextUpdate }).from(crls)),
    rows(() => Promise.all(config.profiles.map((p) => openEscalations(temporal, p.name)))),
  ]);
  return {
    enrollments: enrollmentRows,
    certificates: certificateRows,
    earliestExpiry,
    crls: crlRows,
    escalations,
  };
}

async function openEscalations(
  temporal: Client,
  profile: string,
): Promise<{ profile: string; open: number; oldestSince: number | undefined }> {
  const query = `WorkflowType="enrollment" AND PkiStatus="Escalated" AND ExecutionStatus="Running" AND PkiProfile="${profile}"`;
  const { count: open } = await temporal.workflow.count(query);
  if (open === 0) return { profile, open, oldestSince: undefined };
  // Visibility knows when a workflow started, not when it escalated: the state query does.
  const since: number[] = [];
  let inspected = 0;
  for await (const execution of temporal.workflow.list({ query, pageSize: ESCALATIONS_INSPECTED })) {
    const state = await temporal
      .withDeadline(Date.now() + 2_000, () =>
        temporal.workflow.getHandle(execution.workflowId).query(enrollmentStateQuery),
      )
      .catch(() => undefined);
    if (state?.escalation) since.push(seconds(new Date(state.escalation.since)));
    if (++inspected >= ESCALATIONS_INSPECTED) break;
  }
  return { profile, open, oldestSince: since.length > 0 ? Math.min(...since) : undefined };
}

const rowsOf = <T>(read: Rows<T[]>): T[] => (read.ok ? read.rows : []);

async function rows<T>(read: () => Promise<T>): Promise<Rows<T>> {
  try {
    return { ok: true, rows: await read() };
  } catch (err) {
    componentLogger('metrics').warn({ err }, 'a fleet metrics source did not answer');
    return { ok: false };
  }
}

/** The enrollments table says issued or failed; the metric says the same words. */
const outcomeOf = (status: string) => (status === 'issued' ? 'issued' : 'failed');
const seconds = (d: Date) => Math.floor(d.getTime() / 1000);
