/** FROZEN copy (2026-11) of the types the legacy workflows in this folder were written against. */
/**
 * The activities the workflows call, as types only (workflows import nothing else from activities/).
 * Implementations live next to this file, one folder per external system.
 */
import type { RevocationReason } from '../../pki/x509/crl.js';
import type {
  DeviceCertificate,
  EnrollmentInput,
  EnrollmentOutcome,
  IssuedCertificate,
  PkiStatus,
} from './definitions-2026-11.js';

export type MdmVerdict = { verdict: 'approved' } | { verdict: 'rejected'; reason: string };

/** Whether the certificate that signed a renewal may renew this device's certificate. */
export type RenewalSignerVerdict =
  | { verdict: 'accepted'; serialHex: string }
  | { verdict: 'refused'; failInfo: 'badRequest' | 'badCertId' | 'badTime'; reason: string };

export interface AuditEntry {
  at: string;
  action: string;
  details: Record<string, unknown>;
}

export interface IssueCertificateInput {
  profile: string;
  enrollmentId: string;
  csr: string;
  /** Chosen by the workflow, so a retried activity signs the very same certificate again. */
  serialHex: string;
  notBefore: string;
  notAfter: string;
}

export interface RecordEnrollmentInput {
  enrollmentId: string;
  request: Pick<EnrollmentInput, 'profile' | 'transactionId' | 'messageType' | 'deviceId' | 'csr'> & {
    csrSha256: string;
  };
  receivedAt: string;
  completedAt: string;
  outcome: EnrollmentOutcome;
  trail: AuditEntry[];
}

/** Events for integrations and operators, delivered as HMAC-signed JSON webhooks (and e-mail). */
export interface PkiEvent {
  type:
    | 'enrollment.succeeded'
    | 'enrollment.failed'
    | 'enrollment.escalated'
    | 'certificate.renewal_due'
    | 'certificate.renewal_overdue'
    | 'certificate.expired'
    | 'certificate.revoked';
  /** Unique per event (workflow id + step): receivers de-duplicate on it. */
  id: string;
  at: string;
  profile: string;
  deviceId: string;
  /** The workflow the event is about: operators open it in the Web UI. */
  workflowId: string;
  data: Record<string, unknown>;
}

export interface EnrollmentActivities {
  verifyWithMdm(input: { profile: string; transactionId: string; csr: string }): Promise<MdmVerdict>;
  checkRenewalSigner(input: {
    profile: string;
    deviceId: string;
    /** DER, base64: the certificate that signed the RenewalReq. */
    signerCertificate: string;
  }): Promise<RenewalSignerVerdict>;
  /** Upstream CA (e.g. Atlas): submits once per enrollment, then polls (heartbeating) until issued. */
  issueUpstream(input: IssueCertificateInput): Promise<IssuedCertificate>;
  /** Stores the signed certificate (status valid) before anything is told about it; idempotent. */
  storeIssuedCertificate(input: {
    enrollmentId: string;
    profile: string;
    deviceId: string;
    issued: IssuedCertificate;
  }): Promise<void>;
  /** The enrollment's outcome, its audit trail and the device's state, in one transaction; idempotent. */
  recordEnrollment(input: RecordEnrollmentInput): Promise<void>;
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
  publishEvent(event: PkiEvent): Promise<void>;
  recordAudit(input: {
    profile: string;
    deviceId: string;
    subject: string;
    entries: AuditEntry[];
  }): Promise<void>;
  handOffToLifecycle(input: {
    profile: string;
    deviceId: string;
    certificate: DeviceCertificate;
  }): Promise<void>;
}

export interface LifecycleActivities {
  /** Mirrors the lifecycle's status into the devices table, for reports and the operator API. */
  recordDeviceStatus(input: {
    profile: string;
    deviceId: string;
    status: PkiStatus;
    serialHex?: string;
  }): Promise<void>;
  publishEvent(event: PkiEvent): Promise<void>;
  recordAudit(input: {
    profile: string;
    deviceId: string;
    subject: string;
    entries: AuditEntry[];
  }): Promise<void>;
}

/** Run on the `pki-hsm` queue: only hosts holding the CA keys execute them. */
export interface HsmActivities {
  issueCertificate(input: IssueCertificateInput): Promise<IssuedCertificate>;
  /**
   * Marks the certificate revoked (idempotent: a second call keeps the first reason and time) and
   * publishes a new CRL for its CA, signed in the HSM.
   */
  revokeCertificate(input: {
    issuingCa: string;
    serialHex: string;
    /** RFC 5280 CRLReason name. */
    reason: RevocationReason;
    revokedAt: string;
    actor: string;
  }): Promise<{ revokedAt: string; alreadyRevoked: boolean }>;
  /** Re-signs the CA's CRL (schedule, before nextUpdate). */
  publishCrl(input: { issuingCa: string }): Promise<{ crlNumber: number; nextUpdate: string }>;
}

export type { RevocationReason };

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
   * Tells each device's lifecycle workflow that its current certificate was revoked (signal `revoke`),
   * so its status follows. A revoked certificate that is not the lifecycle's current one is skipped.
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
