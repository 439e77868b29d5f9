import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  customType,
  index,
  integer,
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

/** The identity a verifier vouched for (pki/admission/identity.ts), kept as JSON. */
type StoredIdentity = {
  deviceId: string;
  vouchedBy: string | null;
  attributes: Record<string, string | string[]>;
};

/** One row per device per profile: what operators ask about ("which devices hold a valid cert?"). */
export const devices = pgTable(
  'devices',
  {
    profile: text('profile').notNull(),
    deviceId: text('device_id').notNull(),
    status: text('status').notNull(),
    currentCertificateSerial: text('current_certificate_serial'),
    certificateNotAfter: at('certificate_not_after'),
    /**
     * Set when the device was revoked or removed: no certificate until an operator readmits it (or,
     * where the profile allows, a fresh MDM-vouched enrollment does).
     */
    blockedAt: at('blocked_at'),
    blockedReason: text('blocked_reason'),
    createdAt: at('created_at').notNull().defaultNow(),
    updatedAt: at('updated_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.profile, t.deviceId] }), index('devices_status_idx').on(t.status)],
);

/**
 * The identity an enrollment was admitted with, written before anything is issued. The CA adapters
 * read it instead of trusting the workflow: they issue only for an admitted enrollment, for the CSR
 * that was admitted, with the subject the profile's template gives this identity.
 */
export const admissions = pgTable('admissions', {
  enrollmentId: text('enrollment_id').primaryKey(),
  profile: text('profile').notNull(),
  deviceId: text('device_id').notNull(),
  identity: jsonb('identity').$type<StoredIdentity>().notNull(),
  csrSha256: text('csr_sha256').notNull(),
  /** The serial of the certificate that signed a renewal. */
  renewalOf: text('renewal_of'),
  /** Replacing the device's certificate needs an operator (nobody vouched for this request). */
  approvalRequired: boolean('approval_required').notNull().default(false),
  approvedBy: text('approved_by'),
  approvedAt: at('approved_at'),
  /** The device was revoked or removed and this enrollment readmits it (MDM-vouched, where allowed). */
  readmits: boolean('readmits').notNull().default(false),
  createdAt: at('created_at').notNull().defaultNow(),
});

/**
 * Serial numbers drawn for enrollments, recorded before signing: a clash with an existing serial of
 * the same CA is seen (primary key) and redrawn, and a retried issuance signs the same TBS again.
 */
export const serials = pgTable(
  'serials',
  {
    issuingCa: text('issuing_ca').notNull(),
    serialHex: text('serial_hex').notNull(),
    enrollmentId: text('enrollment_id').notNull(),
    notBefore: at('not_before').notNull(),
    notAfter: at('not_after').notNull(),
    reservedAt: at('reserved_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.issuingCa, t.serialHex] }),
    uniqueIndex('serials_enrollment_idx').on(t.enrollmentId),
  ],
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
    /** The daily report's reason group (FailureCause: mdm, policy, ca, rejected, deadline); null before reports. */
    failureCause: text('failure_cause'),
    /** The MDM's refusal code, when it gave one (Intune). */
    failureCode: text('failure_code'),
    csrSha256: text('csr_sha256').notNull(),
    /** The PKCS#10 (it carries the challenge password), AES-GCM sealed under an HSM key. */
    csrSealed: bytea('csr_sealed').notNull(),
    certificateSerial: text('certificate_serial'),
    /**
     * Who decided the identity: the profile's verifier type (intune, jamf, static-challenge...) or
     * `renewal-signer` (a renewal signed by the device's current certificate, no MDM asked). Null on
     * rows recorded before 2026-12-02. pki_enrollments_total counts by it.
     */
    verifier: text('verifier'),
    createdAt: at('created_at').notNull(),
    completedAt: at('completed_at'),
  },
  (t) => [
    index('enrollments_device_idx').on(t.profile, t.deviceId),
    // The daily report reads one day of outcomes out of all of them.
    index('enrollments_completed_idx').on(t.completedAt),
    // /metrics counts enrollments by these at every scrape: an index-only scan, not the table.
    index('enrollments_outcome_idx').on(t.profile, t.verifier, t.status),
  ],
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
    /** The verified identity it was issued to: a renewal signed by it keeps this identity. */
    identity: jsonb('identity').$type<StoredIdentity>(),
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
    // The SIEM export (GET /operator/audit) reads by date range, in (occurred_at, id) order.
    index('audit_events_occurred_idx').on(t.occurredAt, t.id),
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
    /** The device it vouches for; null: unbound (the device names itself, like a static challenge). */
    deviceId: text('device_id'),
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

/**
 * Events for webhooks and e-mail, written in the same transaction as the state change they report
 * and delivered asynchronously (activities/notify/outbox.ts): nothing in a workflow waits for a
 * receiver. The id is the delivery id receivers de-duplicate on.
 */
export const eventOutbox = pgTable(
  'event_outbox',
  {
    id: text('id').primaryKey(),
    type: text('type').notNull(),
    profile: text('profile').notNull(),
    deviceId: text('device_id'),
    /** The PkiEvent as delivered. */
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    createdAt: at('created_at').notNull().defaultNow(),
  },
  (t) => [index('event_outbox_created_idx').on(t.createdAt)],
);

/** One row per event and target (a webhook URL, operator e-mail): at-least-once with retries, then dead. */
export const eventDeliveries = pgTable(
  'event_deliveries',
  {
    eventId: text('event_id').notNull(),
    /** `webhook:<index>:<origin>` or `email`. */
    target: text('target').notNull(),
    /** pending, delivered, dead. */
    state: text('state').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    /** When it became pending (recorded, or redelivered by an operator): the dead-letter clock. */
    pendingSince: at('pending_since').notNull().defaultNow(),
    nextAttemptAt: at('next_attempt_at').notNull().defaultNow(),
    /** A dispatcher holds the delivery until then; after it, another may take it. */
    leaseUntil: at('lease_until'),
    lastError: text('last_error'),
    deliveredAt: at('delivered_at'),
    deadAt: at('dead_at'),
  },
  (t) => [
    primaryKey({ columns: [t.eventId, t.target] }),
    index('event_deliveries_due_idx').on(t.state, t.nextAttemptAt),
  ],
);

/** Delivery ids of signed inbound webhooks already acted on: a replay is refused. */
export const webhookReceipts = pgTable(
  'webhook_receipts',
  {
    integration: text('integration').notNull(),
    deliveryId: text('delivery_id').notNull(),
    receivedAt: at('received_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.integration, t.deliveryId] })],
);

/**
 * The delegated OCSP responder of each of our issuing CAs (RFC 6960 4.2.2.2): its key lives in the
 * RA token (the API signs answers with it, never with a CA key); the API records the public key
 * here, the CA worker certifies it (id-kp-OCSPSigning, id-pkix-ocsp-nocheck) before the last
 * certificate runs out, and the API answers with the newest certificate of that key.
 */
export const ocspResponders = pgTable('ocsp_responders', {
  issuingCa: text('issuing_ca').primaryKey(),
  /** DER SubjectPublicKeyInfo of the responder key. */
  spki: bytea('spki').notNull(),
  certificate: bytea('certificate'),
  notAfter: at('not_after'),
  updatedAt: at('updated_at').notNull().defaultNow(),
});

/**
 * The daily reports (activities/reports/), one per report date in the configured time zone: a report
 * run again the same day replaces that day's row. `body` is the DailyReport served by the operator API.
 */
export const reports = pgTable('reports', {
  reportDate: text('report_date').primaryKey(),
  generatedAt: at('generated_at').notNull(),
  periodStart: at('period_start').notNull(),
  periodEnd: at('period_end').notNull(),
  body: jsonb('body').$type<Record<string, unknown>>().notNull(),
});

/**
 * The service credentials (workflows/service-credential.ts): per name, one row per generation of key
 * and certificate the product made for a service identity (Entra ID client certificate). The key is
 * in the data token under `key_label`; adapters sign with the `active` row's key. States:
 * `generated` (key made, not certified yet), `pending-registration` (certified, waiting for the
 * operator to register it with the identity provider), `active`, `retiring` (the previous one,
 * still registered during the overlap), `retired`.
 */
export const serviceCredentials = pgTable(
  'service_credentials',
  {
    name: text('name').notNull(),
    generation: integer('generation').notNull(),
    keyLabel: text('key_label').notNull(),
    /** DER SubjectPublicKeyInfo, read back from the token when the key was made. */
    spki: bytea('spki').notNull(),
    certificate: bytea('certificate'),
    serialHex: text('serial_hex'),
    notAfter: at('not_after'),
    state: text('state')
      .$type<'generated' | 'pending-registration' | 'active' | 'retiring' | 'retired'>()
      .notNull(),
    createdAt: at('created_at').notNull().defaultNow(),
    activatedAt: at('activated_at'),
    retiredAt: at('retired_at'),
  },
  (t) => [
    primaryKey({ columns: [t.name, t.generation] }),
    uniqueIndex('service_credentials_key_label').on(t.keyLabel),
  ],
);

/**
 * The key inventory (activities/keys/): every key of every token, as the process that holds the
 * token last saw it. Key custody keeps each token in its own processes (the API cannot list the CA
 * token), so each records its own tokens here and GET /operator/keys reads the table. `state` is a
 * NIST SP 800-57 state (activities/keys/states.ts); `compromised_at` is set by an operator and never
 * cleared by a listing; `signatures` counts the signatures made with the key since it was recorded.
 */
export const keyInventory = pgTable(
  'key_inventory',
  {
    tokenLabel: text('token_label').notNull(),
    keyLabel: text('key_label').notNull(),
    /** ra, ca, data, root: the key domain of the token. */
    tokenRole: text('token_role').notNull(),
    role: text('role').notNull(),
    algorithm: text('algorithm').notNull(),
    usages: jsonb('usages').$type<string[]>().notNull(),
    /** CKA_START_DATE of the key; for keys that carry none, when the inventory first saw it. */
    createdAt: at('created_at').notNull(),
    state: text('state').notNull(),
    certificateDer: bytea('certificate_der'),
    notAfter: at('not_after'),
    signatures: bigint('signatures', { mode: 'number' }).notNull().default(0),
    firstSeenAt: at('first_seen_at').notNull(),
    lastSeenAt: at('last_seen_at').notNull(),
    compromisedAt: at('compromised_at'),
  },
  (t) => [primaryKey({ columns: [t.tokenLabel, t.keyLabel] })],
);

/**
 * The generations of each local issuing CA (issuing-CA rotation, workflows/ca-rotation.ts). A profile
 * issues from its newest `active` generation; an older `active` one still signs CRLs and answers
 * OCSP until its last certificate expires. States are NIST SP 800-57's: pre-activation (created and
 * announced by GetNextCACert), active, deactivated (no longer signs), destroyed (key objects deleted).
 * No row for a profile: generation 1, the configured keyLabel, as before rotation existed.
 */
export const caGenerations = pgTable(
  'ca_generations',
  {
    profile: text('profile').notNull(),
    generation: integer('generation').notNull(),
    /** Label of the CA key and certificate in the CA token; certificates.issuing_ca of what it issued. */
    keyLabel: text('key_label').notNull(),
    state: text('state').$type<CaGenerationState>().notNull(),
    /** DER of the CA certificate (public): the API serves it without opening the CA token. */
    certificate: bytea('certificate').notNull(),
    /** DER of the RA certificate this generation issued for the API's RA key (absent for generation 1). */
    raCertificate: bytea('ra_certificate'),
    notAfter: at('not_after').notNull(),
    createdAt: at('created_at').notNull().defaultNow(),
    promotedAt: at('promoted_at'),
    deactivatedAt: at('deactivated_at'),
    destroyedAt: at('destroyed_at'),
  },
  (t) => [
    primaryKey({ columns: [t.profile, t.generation] }),
    uniqueIndex('ca_generations_key_label_idx').on(t.keyLabel),
  ],
);

export type CaGenerationState = 'pre-activation' | 'active' | 'deactivated' | 'destroyed';
