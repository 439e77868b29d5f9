/**
 * The activities the workflows call, as types only: the contract activities/ implements (workflows
 * import nothing else from activities/, and activities/ imports its types from here, never the other
 * way round).
 */
import type { VerifiedIdentity } from '../pki/admission/identity.js';
import type {
  DeviceCertificate,
  EnrollmentFailure,
  EnrollmentInput,
  EnrollmentOutcome,
  IssuedCertificate,
  PkiStatus,
  RevocationReason,
} from './definitions.js';

export type MdmVerdict =
  | { verdict: 'approved'; identity: VerifiedIdentity }
  /** `code`: the MDM's own refusal code where it gives one (Intune: ChallengeExpired...), for reports. */
  | { verdict: 'rejected'; reason: string; code?: string };

/**
 * Whether the certificate that signed a renewal may renew: it must be ours, valid now, not revoked,
 * and its device's current certificate (not one it superseded). The identity it was issued to is
 * the identity the renewal keeps.
 */
export type RenewalSignerVerdict =
  | { verdict: 'accepted'; serialHex: string; identity: VerifiedIdentity }
  | { verdict: 'refused'; failInfo: 'badRequest' | 'badCertId' | 'badTime'; reason: string };

/**
 * What admission decided for a verified identity (pki/admission/rules.ts), recorded before anything
 * is issued: the CA adapters issue only for what was admitted here.
 */
export type AdmissionDecision =
  | { decision: 'admitted'; readmitted: boolean }
  /** Nobody vouched for this request and the device holds a valid certificate: an operator decides. */
  | { decision: 'awaiting-approval'; reason: string }
  | { decision: 'refused'; reason: string };

export interface AuditEntry {
  at: string;
  action: string;
  details: Record<string, unknown>;
}

/** Events for integrations and operators, delivered from the outbox as signed webhooks (and e-mail). */
export interface PkiEvent {
  type:
    | 'enrollment.succeeded'
    | 'enrollment.failed'
    | 'enrollment.escalated'
    | 'enrollment.awaiting_approval'
    | 'certificate.renewal_due'
    | 'certificate.renewal_overdue'
    | 'certificate.expired'
    | 'certificate.revoked'
    | 'device.readmitted'
    /** A service credential's new certificate must be registered with the identity provider (operator task). */
    | 'service_credential.registration_needed'
    /** The previous certificate is no longer used: the operator removes it from the identity provider. */
    | 'service_credential.retired'
    /** The daily report (activities/reports/): profile `*`, data = the report's totals and per-profile figures. */
    | 'report.daily'
    /** Key inventory (activities/keys/): profile `*`, deviceId `<token>/<key label>`, once per key and threshold. */
    | 'key.age_exceeded'
    | 'key.expiring'
    /** Issuing-CA rotation (workflows/ca-rotation.ts): deviceId is empty, data names the generations. */
    | 'ca.rotation_announced'
    | 'ca.promoted'
    | 'ca.retired';
  /** Unique per event and stable across retries: the delivery id receivers de-duplicate on. */
  id: string;
  at: string;
  profile: string;
  deviceId: string;
  /** The workflow the event is about: operators open it in the Web UI. */
  workflowId: string;
  data: Record<string, unknown>;
}

/** What the CA adapter is asked to sign. Everything else (subject, extensions, key) it takes from the profile and the admission. */
export interface IssueCertificateInput {
  profile: string;
  enrollmentId: string;
  /** DER PKCS#10, base64: must be the CSR that was admitted. */
  csr: string;
  notBefore: string;
  notAfter: string;
}

export interface RevokeCertificateInput {
  issuingCa: string;
  serialHex: string;
  /** RFC 5280 CRLReason name. */
  reason: RevocationReason;
  revokedAt: string;
  actor: string;
}

export interface RecordEnrollmentInput {
  enrollmentId: string;
  request: Pick<EnrollmentInput, 'profile' | 'transactionId' | 'messageType' | 'csr'> & {
    csrSha256: string;
    /** The verified device, or the claimed one when verification never said. */
    deviceId: string;
    /**
     * Who decided the identity: the renewal's signing certificate alone, or the profile's verifier
     * (metrics and reports count enrollments by it). Absent from executions started before 2026-12-02.
     */
    identityFrom?: 'renewal-signer' | 'verifier';
  };
  receivedAt: string;
  completedAt: string;
  outcome: EnrollmentOutcome;
  /** Why a FAILURE failed, for the daily report's reason groups (absent in runs older than the reports). */
  failure?: EnrollmentFailure;
  trail: AuditEntry[];
  /** Delivered from the outbox once the outcome is committed. */
  event: PkiEvent;
}

/** `pki` queue, run as local activities by the enrollment workflow. */
export interface EnrollmentActivities {
  checkRenewalSigner(input: {
    profile: string;
    /** DER, base64: the certificate that signed the request. */
    signerCertificate: string;
  }): Promise<RenewalSignerVerdict>;
  verifyWithMdm(input: { profile: string; transactionId: string; csr: string }): Promise<MdmVerdict>;
  /** Applies the profile's admission rules to a verified identity and records the admission. */
  admitEnrollment(input: {
    enrollmentId: string;
    profile: string;
    identity: VerifiedIdentity;
    csrSha256: string;
    /** Serial of the device's current certificate that signed this renewal. */
    renewalOf?: string;
    /** The story so far (received, verified...), written with the admission. */
    trail: AuditEntry[];
  }): Promise<AdmissionDecision>;
  /** An operator approved the replacement: the CA adapter may now issue for this admission. */
  recordApproval(input: { enrollmentId: string; by: string; note?: string }): Promise<void>;
  /** Audit entries and an event (enqueued in the outbox) in one transaction. */
  recordEvent(input: {
    profile: string;
    deviceId: string;
    event: PkiEvent;
    trail: AuditEntry[];
  }): Promise<void>;
  /** Starts (or signals) the device's lifecycle with its new certificate. */
  handOffToLifecycle(input: {
    profile: string;
    deviceId: string;
    certificate: DeviceCertificate;
  }): Promise<void>;
  /** Tells the MDM before the device gets the certificate; stores what it must remember for revocation. */
  notifyMdmSuccess(input: {
    profile: string;
    transactionId: string;
    enrollmentId: string;
    csr: string;
    issued: IssuedCertificate;
  }): Promise<void>;
  notifyMdmFailure(input: {
    profile: string;
    transactionId: string;
    csr: string;
    reason: string;
  }): Promise<void>;
  /** The enrollment's outcome, the device's state, the audit trail and the event in one transaction; idempotent. */
  recordEnrollment(input: RecordEnrollmentInput): Promise<void>;
}

/**
 * The CA interface (DESIGN.md "One CA interface"), run on the queue of the profile's adapter:
 * `pki-hsm` for our CA in the HSM, `pki` for an upstream CA. Every call re-checks the profile.
 */
export interface CaActivities {
  /**
   * Signs the admitted request (subject from the profile's template and the admitted identity,
   * extensions from the profile), stores the certificate and returns it. Idempotent per enrollment.
   */
  issueCertificate(input: IssueCertificateInput): Promise<IssuedCertificate>;
  /** Marks it revoked (the first reason and time win), tells the CA, re-signs the CRL. */
  revokeCertificate(input: RevokeCertificateInput): Promise<{ revokedAt: string; alreadyRevoked: boolean }>;
  /** The same for several certificates of one CA, with one CRL. */
  revokeCertificates(input: {
    issuingCa: string;
    serialHexes: string[];
    reason: RevocationReason;
    revokedAt: string;
    actor: string;
  }): Promise<Array<{ serialHex: string; revokedAt: string; alreadyRevoked: boolean }>>;
  /** Re-signs the CA's CRL (schedule, before nextUpdate). */
  publishCrl(input: { issuingCa: string }): Promise<{ crlNumber: number; nextUpdate: string }>;
  /**
   * Certifies, or renews before it runs out, the delegated OCSP responder of every CA this queue
   * signs for whose responder key the API registered.
   */
  certifyOcspResponders(input: Record<string, never>): Promise<Array<{ issuingCa: string; outcome: string }>>;
}

/** `pki` queue, local activities of the device lifecycle. */
export interface LifecycleActivities {
  /**
   * Mirrors the lifecycle's status into the devices table, with the event it announces (outbox) and
   * the device's admission (blocked after a revocation, cleared by a readmission), in one transaction.
   */
  recordDeviceStatus(input: {
    profile: string;
    deviceId: string;
    status: PkiStatus;
    serialHex?: string;
    event?: PkiEvent;
    admission?: { blocked: { reason: string; by: string } } | { readmitted: { by: string } };
  }): Promise<void>;
  /** The device's certificates that are still valid (not revoked, not expired), by CA. */
  listValidCertificates(input: {
    profile: string;
    deviceId: string;
  }): Promise<Array<{ issuingCa: string; serialHex: string }>>;
  recordAudit(input: {
    profile: string;
    deviceId: string;
    subject: string;
    entries: AuditEntry[];
  }): Promise<void>;
}

/** `pki` queue: revocation by serial tells the device's lifecycle, when one runs. */
export interface RevocationActivities {
  notifyLifecycleOfRevocation(input: {
    profile: string;
    deviceId: string;
    serialHex: string;
    reason: RevocationReason;
    by: string;
  }): Promise<{ notified: boolean }>;
}

/** A revocation Intune asked for, as the sync workflow carries it (plain JSON). */
export interface IntuneRevocationRequestItem {
  requestContext: string;
  /** Lower-case hex, as certificates.serial_hex stores it. */
  serialHex: string;
  /** What we sent as caConfiguration (the profile name), when Intune echoes it. */
  caConfiguration: string | null;
}

/** What to do with one Intune revocation request (activities/mdm/intune-revocation.ts). */
export type IntuneRevocationDecision =
  | {
      action: 'revoke';
      requestContext: string;
      issuingCa: string;
      serialHex: string;
      profile: string;
      deviceId: string;
      /** The queue of that profile's CA adapter (absent in decisions recorded before it existed). */
      caQueue?: string;
    }
  | { action: 'answer'; requestContext: string; succeeded: boolean; errorCode: number; errorMessage: string };

export interface IntuneRevocationResultItem {
  requestContext: string;
  succeeded: boolean;
  errorCode: number;
  errorMessage: string;
}

/** `pki` queue: Intune's revocation channel (PKI connector) for one profile, and CRL freshness. */
export interface RevocationSyncActivities {
  downloadIntuneRevocationRequests(input: {
    profile: string;
    maxRequests: number;
  }): Promise<IntuneRevocationRequestItem[]>;
  /** Looks each request up in the certificates table: revoke it, or answer Intune right away. */
  resolveIntuneRevocations(input: {
    profile: string;
    requests: IntuneRevocationRequestItem[];
  }): Promise<IntuneRevocationDecision[]>;
  uploadIntuneRevocationResults(input: {
    profile: string;
    results: IntuneRevocationResultItem[];
  }): Promise<void>;
  /**
   * Tells each device's lifecycle that one of its certificates was revoked (signal
   * `certificateRevoked`), so its status follows.
   */
  signalLifecycleRevocations(input: {
    revoked: Array<{ profile: string; deviceId: string; serialHex: string }>;
    reason: RevocationReason;
    by: string;
  }): Promise<{ signalled: string[] }>;
  /** Local issuing CAs whose CRL is missing or whose nextUpdate falls within `withinSeconds`. */
  listCrlsDue(input: {
    withinSeconds: number;
  }): Promise<Array<{ issuingCa: string; nextUpdate: string | null }>>;
}

export type { RevocationReason } from './definitions.js';

/** `pki` queue: the daily report (schedule `reports/daily`, workflows/daily-report.ts). */
export interface ReportActivities {
  /**
   * Computes the report as of `asOf` (the 24 hours before it; states as of it), stores it under its
   * date in the configured time zone and enqueues its `report.daily` event, in one transaction.
   */
  buildDailyReport(input: { asOf: string; workflowId: string }): Promise<DailyReportSummary>;
  /** Sends the stored report as HTML e-mail to the reports' recipients; none configured: not sent. */
  emailDailyReport(input: { reportDate: string }): Promise<{ sent: boolean }>;
}

export interface DailyReportSummary {
  reportDate: string;
  totals: {
    obtained: number;
    renewSoon: number;
    failed: number;
    notRenewedInTime: number;
    noValidCertificate: number;
  };
}

/** `pki` queue: a service credential's key (data token) and its states (workflows/service-credential.ts). */
export interface ServiceCredentialActivities {
  serviceCredentialStatus(input: { name: string }): Promise<{
    active?: { generation: number; notAfter: string; renewAt: string };
    pending?: { generation: number };
    retiring: number[];
  }>;
  /** The generation waiting for its certificate or registration, else a new key (the next generation). */
  prepareServiceKey(input: { name: string }): Promise<{ generation: number; keyLabel: string }>;
  /** Marks it pending registration and enqueues `service_credential.registration_needed` (certificate PEM). */
  requestServiceRegistration(input: {
    name: string;
    generation: number;
  }): Promise<{ x5tS256: string; notAfter: string }>;
  /** It becomes the one adapters sign with; the previously active one becomes retiring. */
  activateServiceCredential(input: {
    name: string;
    generation: number;
  }): Promise<{ renewAt: string; notAfter: string; overlapSeconds: number }>;
  /** Retiring generations become retired (`service_credential.retired` each). */
  retireServiceCredentials(input: { name: string; generations: number[] }): Promise<void>;
}

/** `pki-hsm` queue: the credential certificate, signed by an internal profile's CA. */
export interface ServiceCredentialCaActivities {
  issueServiceCertificate(input: { name: string; generation: number }): Promise<{ notAfter: string }>;
}

/** One generation of a profile's issuing CA, as the rotation workflow sees it. */
export interface CaGenerationRef {
  generation: number;
  keyLabel: string;
}

/**
 * Issuing-CA rotation (workflows/ca-rotation.ts). Key operations run on `pki-hsm` (the CA token);
 * each step changes ca_generations conditionally and records its audit entry (and event) in the same
 * transaction, so a retried step changes and records nothing twice.
 */
export interface CaRotationHsmActivities {
  /** Creates (or finds, when the ceremony made it) the next generation: key, certificate, RA certificate, first CRL. */
  prepareCaGeneration(input: {
    profile: string;
    workflowId: string;
    raCertificate: string;
    requestedBy: string;
  }): Promise<{ next: CaGenerationRef; previous: CaGenerationRef; nextNotAfter: string }>;
  /** The old generation's key may no longer sign (CKA_SIGN false); state deactivated. */
  deactivateCaGeneration(input: { profile: string; workflowId: string; generation: number }): Promise<void>;
  /** Deletes the old generation's key objects from the CA token; state destroyed. */
  destroyCaGeneration(input: { profile: string; workflowId: string; generation: number }): Promise<void>;
}

/** `pki` queue: database only. */
export interface CaRotationActivities {
  recordRotationEvent(input: {
    profile: string;
    workflowId: string;
    type: 'ca.rotation_announced' | 'ca.retired';
    action: string;
    details: Record<string, unknown>;
  }): Promise<void>;
  /** The next generation becomes the issuing one (state active, promoted_at). Emits `ca.promoted`. */
  promoteCaGeneration(input: {
    profile: string;
    workflowId: string;
    generation: number;
  }): Promise<{ promotedAt: string }>;
  /** The latest notAfter of anything the generation signed for devices (null: nothing). */
  lastCertificateExpiry(input: { issuingCa: string }): Promise<string | null>;
  recordRotationAudit(input: {
    profile: string;
    workflowId: string;
    action: string;
    actor?: string;
    details: Record<string, unknown>;
  }): Promise<void>;
}
