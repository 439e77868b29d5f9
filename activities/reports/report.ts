/**
 * The daily report's shape (DESIGN.md "Reports"): what the workflow stores, the operator API serves
 * (JSON and CSV), the e-mail shows and the `report.daily` webhook carries.
 */
import type { FailureCause } from '../../workflows/definitions.js';

/** The five categories, as counts. */
export interface CategoryCounts {
  /** Devices that got a certificate in the period. */
  obtained: number;
  /** Devices (not blocked, not overdue) whose newest valid certificate runs out within renewSoonDays. */
  renewSoon: number;
  /** Enrollments that ended in FAILURE in the period. */
  failed: number;
  /** Devices whose certificate expired in the period without a renewal, or that are RenewalOverdue now. */
  notRenewedInTime: number;
  /** Known devices holding no valid certificate now (revoked or removed, lapsed, never issued). */
  noValidCertificate: number;
}

export const CATEGORIES = [
  'obtained',
  'renewSoon',
  'failed',
  'notRenewedInTime',
  'noValidCertificate',
] as const satisfies ReadonlyArray<keyof CategoryCounts>;

export const CATEGORY_LABELS: Record<keyof CategoryCounts, string> = {
  obtained: 'Obtained',
  renewSoon: 'Renew soon',
  failed: 'Failed',
  notRenewedInTime: 'Not renewed in time',
  noValidCertificate: 'No valid certificate',
};

/** Failed enrollments by reason group; `unclassified`: recorded before causes were (no failure_cause). */
export interface FailureGroups extends Record<Exclude<FailureCause, 'mdm'>, number> {
  /** MDM refusals by the MDM's code (or its reason, for MDMs that give no code), largest first. */
  mdm: Array<{ code: string; count: number }>;
  unclassified: number;
}

export interface ProfileFigures extends CategoryCounts {
  profile: string;
  failures: FailureGroups;
  notRenewedInTimeDetail: { expired: number; overdue: number };
  noValidCertificateDetail: { blocked: number; lapsed: number; neverIssued: number };
}

export interface TrendPoint extends CategoryCounts {
  reportDate: string;
}

export interface DailyReport {
  /** YYYY-MM-DD in timeZone: the report's key. */
  reportDate: string;
  timeZone: string;
  generatedAt: string;
  /** The 24 hours the "obtained", "failed" and "expired" figures cover, ending at generatedAt. */
  periodStart: string;
  periodEnd: string;
  renewSoonDays: number;
  totals: ProfileFigures;
  profiles: ProfileFigures[];
  /** Earlier reports and this one, oldest first. */
  trend: TrendPoint[];
  /** This report minus the previous one; null for the first report. */
  change: CategoryCounts | null;
}

export const emptyFailures = (): FailureGroups => ({
  mdm: [],
  policy: 0,
  ca: 0,
  rejected: 0,
  deadline: 0,
  unclassified: 0,
});

export const emptyFigures = (profile: string): ProfileFigures => ({
  profile,
  obtained: 0,
  renewSoon: 0,
  failed: 0,
  notRenewedInTime: 0,
  noValidCertificate: 0,
  failures: emptyFailures(),
  notRenewedInTimeDetail: { expired: 0, overdue: 0 },
  noValidCertificateDetail: { blocked: 0, lapsed: 0, neverIssued: 0 },
});

export const countsOf = (f: CategoryCounts): CategoryCounts => ({
  obtained: f.obtained,
  renewSoon: f.renewSoon,
  failed: f.failed,
  notRenewedInTime: f.notRenewedInTime,
  noValidCertificate: f.noValidCertificate,
});
