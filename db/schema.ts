import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  customType,
  index,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({
  dataType: () => 'bytea',
  // postgres-js hands back a Buffer, PGlite a Uint8Array: normalise so callers see one type.
  fromDriver: (value) => new Uint8Array(value),
});

const at = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/** One row per device per profile: what operators ask about ("which devices hold a valid cert?"). */
export const devices = pgTable(
  'devices',
  {
    profile: text('profile').notNull(),
    deviceId: text('device_id').notNull(),
    status: text('status').notNull(),
    currentCertificateSerial: text('current_certificate_serial'),
    certificateNotAfter: at('certificate_not_after'),
    createdAt: at('created_at').notNull().defaultNow(),
    updatedAt: at('updated_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.profile, t.deviceId] }), index('devices_status_idx').on(t.status)],
);

/** One row per SCEP transaction, keyed by its workflow id (enroll/<profile>/<transactionID>). */
export const enrollments = pgTable(
  'enrollments',
  {
    id: text('id').primaryKey(),
    profile: text('profile').notNull(),
    transactionId: text('transaction_id').notNull(),
    deviceId: text('device_id'),
    messageType: text('message_type').notNull(),
    status: text('status').notNull(),
    failInfo: text('fail_info'),
    failureReason: text('failure_reason'),
    csrSha256: text('csr_sha256').notNull(),
    /** The PKCS#10 (it carries the challenge password), AES-GCM sealed under an HSM key. */
    csrSealed: bytea('csr_sealed').notNull(),
    certificateSerial: text('certificate_serial'),
    createdAt: at('created_at').notNull(),
    completedAt: at('completed_at'),
  },
  (t) => [index('enrollments_device_idx').on(t.profile, t.deviceId)],
);

export const certificates = pgTable(
  'certificates',
  {
    /** Label of the issuing CA key: serial numbers are unique per CA, not globally. */
    issuingCa: text('issuing_ca').notNull(),
    serialHex: text('serial_hex').notNull(),
    profile: text('profile').notNull(),
    deviceId: text('device_id').notNull(),
    enrollmentId: text('enrollment_id').notNull(),
    subject: text('subject').notNull(),
    notBefore: at('not_before').notNull(),
    notAfter: at('not_after').notNull(),
    sha256Hex: text('sha256_hex').notNull(),
    der: bytea('der').notNull(),
    status: text('status').notNull().default('valid'),
    revokedAt: at('revoked_at'),
    /** RFC 5280 CRLReason name: keyCompromise, superseded, cessationOfOperation, ... */
    revocationReason: text('revocation_reason'),
    /** What the MDM needs to hear about this certificate later (e.g. Intune's revocation request context). */
    mdmContext: jsonb('mdm_context').$type<Record<string, unknown>>(),
    issuedAt: at('issued_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.issuingCa, t.serialHex] }),
    uniqueIndex('certificates_enrollment_idx').on(t.enrollmentId),
    index('certificates_device_idx').on(t.profile, t.deviceId),
    index('certificates_not_after_idx').on(t.notAfter),
  ],
);

/** Append-only (a trigger refuses UPDATE and DELETE): the record of who did what, when. */
export const auditEvents = pgTable(
  'audit_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    occurredAt: at('occurred_at').notNull().default(sql`now()`),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    profile: text('profile'),
    deviceId: text('device_id'),
    /** What the event is about: a workflow id or a certificate serial. */
    subject: text('subject').notNull(),
    details: jsonb('details').$type<Record<string, unknown>>().notNull().default({}),
  },
  (t) => [
    index('audit_events_subject_idx').on(t.subject),
    index('audit_events_device_idx').on(t.profile, t.deviceId),
  ],
);

/**
 * NDES-style one-time challenges: an operator (or the Jamf webhook) creates one, a device uses it once.
 * Only a SHA-256 of the challenge is kept.
 */
export const oneTimeChallenges = pgTable(
  'one_time_challenges',
  {
    challengeSha256: text('challenge_sha256').primaryKey(),
    profile: text('profile').notNull(),
    /** Who or what it was made for (operator name, Jamf payload identifier, device serial...). */
    issuedTo: text('issued_to'),
    createdAt: at('created_at').notNull().defaultNow(),
    expiresAt: at('expires_at').notNull(),
    usedAt: at('used_at'),
    usedByTransaction: text('used_by_transaction'),
  },
  (t) => [index('one_time_challenges_profile_idx').on(t.profile, t.expiresAt)],
);

/** The latest CRL of each issuing CA; crl_number only grows (RFC 5280 5.2.3). */
export const crls = pgTable('crls', {
  issuingCa: text('issuing_ca').primaryKey(),
  crlNumber: bigint('crl_number', { mode: 'number' }).notNull(),
  thisUpdate: at('this_update').notNull(),
  nextUpdate: at('next_update').notNull(),
  der: bytea('der').notNull(),
});

/**
 * Requests sent to an upstream CA (e.g. GlobalSign Atlas), written BEFORE the POST: a retried
 * activity that finds a row resumes polling instead of submitting again (never two certificates).
 */
export const upstreamSubmissions = pgTable('upstream_submissions', {
  enrollmentId: text('enrollment_id').primaryKey(),
  profile: text('profile').notNull(),
  /** submitting (POST in flight or its outcome unknown), submitted (upstream id known), issued. */
  state: text('state').notNull(),
  upstreamId: text('upstream_id'),
  createdAt: at('created_at').notNull().defaultNow(),
  updatedAt: at('updated_at').notNull().defaultNow(),
});
