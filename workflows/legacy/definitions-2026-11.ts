/** FROZEN copy (2026-11) of the types the legacy workflows in this folder were written against. */
/**
 * The names operators and the API see (DESIGN.md "Names operators see"), and the data that crosses
 * the workflow boundary. Plain JSON only: it is stored in Temporal's history.
 */

import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { RevocationReason } from '../../pki/x509/crl.js';

export const TASK_QUEUE = 'pki';
/** Only hosts with the CA keys poll this queue. */
export const HSM_TASK_QUEUE = 'pki-hsm';

export const PkiProfileKey = defineSearchAttributeKey('PkiProfile', SearchAttributeType.KEYWORD);
export const DeviceIdKey = defineSearchAttributeKey('DeviceId', SearchAttributeType.KEYWORD);
export const PkiStatusKey = defineSearchAttributeKey('PkiStatus', SearchAttributeType.KEYWORD);
export const CertNotAfterKey = defineSearchAttributeKey('CertNotAfter', SearchAttributeType.DATETIME);

export type PkiStatus =
  | 'Pending'
  | 'Verifying'
  | 'Issuing'
  | 'Issued'
  | 'Failed'
  | 'Escalated'
  | 'Active'
  | 'RenewalDue'
  | 'RenewalOverdue'
  | 'Expired'
  | 'Revoked';

export type FailInfoName = 'badAlg' | 'badMessageCheck' | 'badRequest' | 'badTime' | 'badCertId';

export const enrollmentWorkflowId = (profile: string, transactionId: string) =>
  `enroll/${profile}/${transactionId}`;
export const deviceWorkflowId = (profile: string, deviceId: string) => `device/${profile}/${deviceId}`;

/** What the API read from the CSR: enough for policy, without the challenge password. */
export interface CsrSummary {
  subject: string;
  commonName: string | undefined;
  publicKey:
    | { algorithm: 'rsa'; bits: number }
    | { algorithm: 'ec'; curve: string }
    | { algorithm: 'other'; oid: string };
  subjectAltNames: { dns: string[]; email: string[]; uri: string[]; ip: string[] };
}

/** The profile's rules, snapshotted at the start so a config change never alters a running enrollment. */
export interface EnrollmentPolicy {
  minRsaBits: number;
  allowedCurves: string[];
  validitySeconds: number;
  backdateSeconds: number;
  /** Which queue signs: our HSM CA (`pki-hsm`) or an upstream CA reached over HTTPS (`pki`). */
  ca: 'local-hsm' | 'upstream';
  /** Whether a renewal signed by the device's valid certificate must still pass the MDM check. */
  renewalRequiresMdm: boolean;
  /** Whether the MDM wants to hear how a request ended (Intune); no notice activity otherwise. */
  mdmTakesNotices: boolean;
  /** Whether the profile has webhooks or e-mail to tell; no event activity otherwise. */
  publishesEvents: boolean;
  escalation: {
    maxAttempts: number;
    initialRetrySeconds: number;
    maxRetryIntervalSeconds: number;
    deadlineSeconds: number;
    stepTimeoutSeconds: number;
  };
}

export interface EnrollmentInput {
  profile: string;
  transactionId: string;
  messageType: 'PKCSReq' | 'RenewalReq';
  deviceId: string;
  /** DER PKCS#10, base64. It holds the challenge password: only activities read it. */
  csr: string;
  csrSummary: CsrSummary;
  /** Identify the request, so a resent transactionID with another CSR or signer key is refused. */
  fingerprint: RequestFingerprint;
  policy: EnrollmentPolicy;
  /**
   * Set when the request is signed by an existing certificate (RenewalReq, or a PKCSReq signed by a
   * certificate that is not self-signed): DER, base64. That certificate must be ours, valid, and
   * this device's.
   */
  renewalSigner?: string;
}

export interface RequestFingerprint {
  csrSha256: string;
  signerKeySha256: string;
}

export interface IssuedCertificate {
  /** DER, base64. */
  certificate: string;
  serialHex: string;
  issuingCa: string;
  notBefore: string;
  notAfter: string;
  sha256Hex: string;
}

export type EnrollmentOutcome =
  | { status: 'SUCCESS'; issued: IssuedCertificate }
  | { status: 'FAILURE'; failInfo: FailInfoName; reason: string };

/** What a finished enrollment workflow returns: the outcome, and what it was for. */
export interface EnrollmentResult {
  fingerprint: RequestFingerprint;
  outcome: EnrollmentOutcome;
}

export interface EnrollmentState {
  status: PkiStatus;
  /** While escalated: the step that keeps failing and its last error, for the operator. */
  escalation?: { step: string; error: string; since: string; deadline: string };
  fingerprint: RequestFingerprint;
  deviceId: string;
  outcome: EnrollmentOutcome | undefined;
}

/**
 * The API's start-or-attach: resolves with the outcome once there is one. Its validator refuses a
 * request whose fingerprint differs from the one the workflow was started with.
 */
/** Operator signal (Web UI "Send a Signal", or `temporal workflow signal --name retry`). */
export interface RetryPayload {
  /** Who decided, for the audit trail. */
  by?: string;
  note?: string;
}
/** Operator signal: fail the escalated enrollment with this reason (sent to the device and the MDM). */
export interface RejectPayload {
  reason: string;
  by?: string;
}
export const retrySignal = defineSignal<[RetryPayload?]>('retry');
export const rejectSignal = defineSignal<[RejectPayload]>('reject');

export const awaitOutcomeUpdate = defineUpdate<EnrollmentOutcome, [RequestFingerprint]>('awaitOutcome');
export const enrollmentStateQuery = defineQuery<EnrollmentState>('state');

/** The profile's lifecycle timings, snapshotted when the lifecycle starts (and at each renewal). */
export interface LifecyclePolicy {
  /** Renewal point as a fraction of the lifetime, unless renewalLeadSeconds is set. */
  renewalFraction: number;
  renewalLeadSeconds?: number;
  /** RenewalOverdue this long before notAfter; default a tenth of the lifetime. */
  overdueMarginSeconds?: number;
  /** Revoke a superseded certificate this long after its successor arrived; null keeps it. */
  supersededGraceSeconds: number | null;
  /** Whether the profile has webhooks or e-mail to tell (no event activity otherwise). */
  publishesEvents?: boolean;
}

export interface DeviceLifecycleInput {
  profile: string;
  deviceId: string;
  policy: LifecyclePolicy;
  /** Carried across continue-as-new. */
  carried?: DeviceLifecycleState;
}

export interface DeviceCertificate {
  serialHex: string;
  issuingCa: string;
  notBefore: string;
  notAfter: string;
  enrollmentId: string;
}

export interface DeviceLifecycleState {
  status: PkiStatus;
  current: DeviceCertificate | undefined;
  /** Older certificates still valid after a renewal, and when they are to be revoked as superseded. */
  superseded: Array<{ certificate: DeviceCertificate; revokeAt: string }>;
  /** Serials already applied, so a redelivered signal is a no-op. */
  seenSerials: string[];
  /** Set once the MDM reported the device gone: the lifecycle ends. */
  removed?: { at: string; source: string };
}

/**
 * The RFC 5280 reasons an operator may give. Not certificateHold: a revocation here is final, and a
 * held certificate would have to come back.
 */
export const OPERATOR_REVOCATION_REASONS = [
  'unspecified',
  'keyCompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'privilegeWithdrawn',
] as const satisfies readonly RevocationReason[];

/** Operator revocation (Web UI signal, `temporal workflow signal --name revoke`, or the operator API). */
export interface RevokePayload {
  /** Default unspecified. */
  reason?: (typeof OPERATOR_REVOCATION_REASONS)[number];
  by?: string;
}
/** The MDM says the device left management: its certificates are revoked and the lifecycle ends. */
export interface DeviceRemovedPayload {
  source?: string;
}

export const certificateIssuedSignal = defineSignal<[DeviceCertificate]>('certificateIssued');
export const revokeSignal = defineSignal<[RevokePayload?]>('revoke');
export const deviceRemovedSignal = defineSignal<[DeviceRemovedPayload?]>('deviceRemoved');
export const deviceStateQuery = defineQuery<DeviceLifecycleState>('state');
