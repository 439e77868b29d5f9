/**
 * The names operators and the API see (DESIGN.md "Names operators see"), and the data that crosses
 * the workflow boundary. Plain JSON only: it is stored in Temporal's history. The activities the
 * workflows call are typed beside this file (workflows/activities.ts): together they are the one
 * contract between workflows, activities and the API.
 */

import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { VerifiedIdentity } from '../pki/admission/identity.js';
import type { CsrRequest, SubjectTemplate } from '../pki/admission/subject-template.js';
import type { RevocationReason } from '../pki/x509/crl.js';

export type { VerifiedIdentity } from '../pki/admission/identity.js';
export type { RevocationReason } from '../pki/x509/crl.js';

export const TASK_QUEUE = 'pki';
/** Only hosts with the CA keys poll this queue. */
export const HSM_TASK_QUEUE = 'pki-hsm';

export const PkiProfileKey = defineSearchAttributeKey('PkiProfile', SearchAttributeType.KEYWORD);
export const DeviceIdKey = defineSearchAttributeKey('DeviceId', SearchAttributeType.KEYWORD);
export const PkiStatusKey = defineSearchAttributeKey('PkiStatus', SearchAttributeType.KEYWORD);
export const CertNotAfterKey = defineSearchAttributeKey('CertNotAfter', SearchAttributeType.DATETIME);
/**
 * How a finished enrollment ended, in words (`Issued: serial ...`, `Refused: <reason>`): a refused
 * enrollment is a green "Completed" workflow, so the list needs this column to tell it apart.
 */
export const PkiOutcomeKey = defineSearchAttributeKey('PkiOutcome', SearchAttributeType.KEYWORD);

export type PkiStatus =
  | 'Pending'
  | 'Verifying'
  | 'Issuing'
  | 'Issued'
  | 'Failed'
  | 'Escalated'
  | 'AwaitingApproval'
  | 'Active'
  | 'RenewalDue'
  | 'RenewalOverdue'
  | 'Expired'
  | 'Revoked'
  /** A service credential's new certificate waits for the operator to register it (signal `registered`). */
  | 'RegistrationNeeded';

export type FailInfoName = 'badAlg' | 'badMessageCheck' | 'badRequest' | 'badTime' | 'badCertId';

/**
 * ApplicationFailure types activities throw that workflows and the API act on: one list, so a
 * thrower and a matcher can never disagree on a spelling.
 */
export const FAILURE = {
  /** The CSR does not parse or its signature fails: FAILURE badMessageCheck. */
  invalidCsr: 'InvalidCsr',
  /** The upstream CA refused the request on policy grounds: FAILURE badRequest. */
  upstreamPolicy: 'UpstreamPolicyViolation',
  /** An issuance request the CA adapter will not sign (not admitted, forged, outside the profile). */
  refusedIssuance: 'IssuanceRefused',
  /** The resent transactionID belongs to another CSR or signer key. */
  transactionMismatch: 'TransactionMismatch',
  /** A workflow names a profile (or CA) this worker does not serve: a deployment mismatch. */
  unknownProfile: 'UnknownProfile',
  unknownIssuingCa: 'UnknownIssuingCa',
  unknownCertificate: 'UnknownCertificate',
  invalidRevocation: 'InvalidRevocation',
} as const;

/**
 * `enroll/<profile>/<transactionID>`, the transactionID made readable and URL-safe: a SCEP
 * transactionID is any printable string (often base64: `/`, `+`, `=`), and a raw `/` gave ids like
 * `enroll/devices//uaj...` (an empty segment) that do not survive URLs. Each character outside
 * `A-Z a-z 0-9 - . ~` becomes `_XX` (its UTF-8 bytes in hex, `_` itself included): percent-encoding
 * with `_` for `%`, so the id is one unreserved-only segment (nothing to decode twice on its way
 * through a URL), an operator still reads the transactionID in it (`_2Fuaj...XoDjI_3D`), and the
 * mapping stays one-to-one (a resent transaction finds its workflow, two transactions never share
 * one). Hex and GUID transactionIDs (sscep, Windows, Apple) keep the id they had before this scheme.
 * Transactions started before it live under {@link legacyEnrollmentWorkflowId}.
 */
export const enrollmentWorkflowId = (profile: string, transactionId: string) =>
  `enroll/${profile}/${idSegment(transactionId)}`;
/** The id of enrollments started before {@link enrollmentWorkflowId} escaped the transactionID. */
export const legacyEnrollmentWorkflowId = (profile: string, transactionId: string) =>
  `enroll/${profile}/${transactionId}`;

/** One path segment, unreserved characters only (see enrollmentWorkflowId); never empty, never a dot segment. */
export function idSegment(value: string): string {
  if (value === '') return '_';
  const escaped = Array.from(value, (char) =>
    /^[A-Za-z0-9.~-]$/.test(char) ? char : hexBytes(char).replace(/(..)/g, '_$1'),
  ).join('');
  // `.` and `..` are dot segments: URL normalisation would remove them.
  return /^\.+$/.test(escaped) ? escaped.replace(/\./g, '_2E') : escaped;
}

/** UTF-8 bytes of one character in upper-case hex, without node:buffer (workflow code may import this file). */
function hexBytes(char: string): string {
  return Array.from(new TextEncoder().encode(char), (b) =>
    b.toString(16).toUpperCase().padStart(2, '0'),
  ).join('');
}
export const deviceWorkflowId = (profile: string, deviceId: string) => `device/${profile}/${deviceId}`;
export const revocationWorkflowId = (issuingCa: string, serialHex: string) =>
  `revoke/${issuingCa}/${serialHex}`;
/** The daily report's schedule; its runs are `reports/daily-<time>` (Temporal appends the time). */
export const DAILY_REPORT_SCHEDULE_ID = 'reports/daily';
/** A report run now (CLI, operator API) rather than by the schedule. */
export const dailyReportNowWorkflowId = (at: Date) => `reports/daily/now/${at.toISOString()}`;

/** What the API read from the CSR: enough for policy and the template, without the challenge password. */
export interface CsrSummary extends CsrRequest {
  subject: string;
  commonName: string | undefined;
  publicKey:
    | { algorithm: 'rsa'; bits: number }
    | { algorithm: 'ec'; curve: string }
    | { algorithm: 'other'; oid: string };
}

/** The profile's rules, snapshotted at the start so a config change never alters a running enrollment. */
export interface EnrollmentPolicy {
  minRsaBits: number;
  allowedCurves: string[];
  validitySeconds: number;
  backdateSeconds: number;
  /** Subject and SANs from the verified identity; the CA adapter applies the same template again. */
  template: SubjectTemplate;
  /**
   * The profile's CA adapter: its task queue (`pki-hsm` for our CA in the HSM, `pki` for an upstream
   * CA) and how long one issuance attempt may take (an upstream CA polls, heartbeating).
   * `signsLocally`: the worker running this workflow holds the CA token (CA_ISSUANCE=local), so the
   * certificate is signed in a local activity; absent in runs started before it existed.
   */
  ca: { queue: string; timeoutSeconds: number; heartbeatSeconds?: number; signsLocally?: boolean };
  /** Whether a renewal signed by the device's valid certificate must still pass the MDM check. */
  renewalRequiresMdm: boolean;
  /** Whether the MDM wants to hear how a request ended (Intune); no notice activity otherwise. */
  mdmTakesNotices: boolean;
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
  /**
   * The device the request says it is (its CN): shown until the verifier has said who it really is,
   * never trusted.
   */
  claimedDeviceId: string;
  /** DER PKCS#10, base64. It holds the challenge password: only activities read it. */
  csr: string;
  csrSummary: CsrSummary;
  /** Identify the request, so a resent transactionID with another CSR or signer key is refused. */
  fingerprint: RequestFingerprint;
  policy: EnrollmentPolicy;
  /**
   * Set when the request is signed by an existing certificate (RenewalReq, or a PKCSReq signed by a
   * certificate that is not self-signed): DER, base64. That certificate must be ours, valid, and the
   * device's current one.
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

/**
 * Why an enrollment failed, as the daily report groups it: the MDM said no (with its code), the
 * request broke policy (key, template, renewal signer, admission, unreadable CSR), the CA refused
 * it, an operator rejected it (escalated or awaiting approval), or nobody decided before the deadline.
 */
export const FAILURE_CAUSES = ['mdm', 'policy', 'ca', 'rejected', 'deadline'] as const;
export type FailureCause = (typeof FAILURE_CAUSES)[number];
export interface EnrollmentFailure {
  cause: FailureCause;
  /** The MDM's refusal code (cause mdm), when it gives one. */
  code?: string;
}

export type EnrollmentOutcome =
  | { status: 'SUCCESS'; issued: IssuedCertificate }
  | { status: 'FAILURE'; failInfo: FailInfoName; reason: string };

/** What a finished enrollment workflow returns: the outcome, and what it was for. */
export interface EnrollmentResult {
  fingerprint: RequestFingerprint;
  outcome: EnrollmentOutcome;
  /** The verified device, when the verifier got that far. */
  deviceId?: string;
}

export interface EnrollmentState {
  status: PkiStatus;
  /** While escalated: the step that keeps failing and its last error, for the operator. */
  escalation?: { step: string; error: string; since: string; deadline: string };
  /** While awaiting approval: why, and until when an operator may decide. */
  approval?: { reason: string; since: string; deadline: string };
  fingerprint: RequestFingerprint;
  /** The claimed device until the verifier answered, then the verified one. */
  deviceId: string;
  /** Who vouched for it (after verification): an MDM, a bound one-time challenge, or nobody (null). */
  vouchedBy?: VerifiedIdentity['vouchedBy'];
  outcome: EnrollmentOutcome | undefined;
}

/** Operator signal (Web UI "Send a Signal", or `temporal workflow signal --name retry`). */
export interface RetryPayload {
  /** Who decided, for the audit trail. */
  by?: string;
  note?: string;
}
/** Operator signal: fail the escalated (or awaiting approval) enrollment with this reason. */
export interface RejectPayload {
  reason: string;
  by?: string;
}
/** Operator signal: let an enrollment awaiting approval replace the device's certificate. */
export interface ApprovePayload {
  by?: string;
  note?: string;
}
export const retrySignal = defineSignal<[RetryPayload?]>('retry');
export const rejectSignal = defineSignal<[RejectPayload]>('reject');
export const approveSignal = defineSignal<[ApprovePayload?]>('approve');

/**
 * The API's start-or-attach: resolves with the outcome once there is one. Its validator refuses a
 * request whose fingerprint differs from the one the workflow was started with.
 */
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
  /** The queue of the profile's CA adapter (revocations); runs started before it existed use pki-hsm. */
  caQueue?: string;
  /** Runs started before events moved to the outbox carried this; ignored since. */
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
  /** Set when the device was revoked: it gets no certificate until an operator readmits it. */
  blocked?: { at: string; reason: string; by: string };
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
export type OperatorRevocationReason = (typeof OPERATOR_REVOCATION_REASONS)[number];

/** Operator revocation of a device: every valid certificate it holds (Web UI signal, operator API). */
export interface RevokePayload {
  /** Default unspecified. */
  reason?: OperatorRevocationReason;
  by?: string;
}
/** The MDM says the device left management: its certificates are revoked and the lifecycle ends. */
export interface DeviceRemovedPayload {
  source?: string;
}
/** Operator signal: a revoked or removed device may enroll again. */
export interface ReadmitPayload {
  by?: string;
  note?: string;
}
/** A certificate of this device was revoked elsewhere (revoke by serial, Intune): the lifecycle follows. */
export interface CertificateRevokedPayload {
  serialHex: string;
  reason: RevocationReason;
  by: string;
}

export const certificateIssuedSignal = defineSignal<[DeviceCertificate]>('certificateIssued');
export const revokeSignal = defineSignal<[RevokePayload?]>('revoke');
export const deviceRemovedSignal = defineSignal<[DeviceRemovedPayload?]>('deviceRemoved');
export const readmitSignal = defineSignal<[ReadmitPayload?]>('readmit');
export const certificateRevokedSignal = defineSignal<[CertificateRevokedPayload]>('certificateRevoked');
export const deviceStateQuery = defineQuery<DeviceLifecycleState>('state');

/** Revocation of one certificate by serial (operator API, `npm run revoke -- --serial`). */
export interface CertificateRevocationInput {
  issuingCa: string;
  serialHex: string;
  /** The certificate's profile and device, so the device's lifecycle (if any) hears of it. */
  profile: string;
  deviceId: string;
  reason: RevocationReason;
  by: string;
  caQueue: string;
}
export interface CertificateRevocationResult {
  revokedAt: string;
  alreadyRevoked: boolean;
  /** Whether a running device lifecycle was told. */
  lifecycleNotified: boolean;
}

/**
 * A service credential (an adapter's own identity at a SaaS, e.g. Entra ID client certificate):
 * workflow `service/<name>/credential` rotates its key and certificate (workflows/service-credential.ts).
 */
export const serviceCredentialWorkflowId = (name: string) => `service/${name}/credential`;
export interface ServiceCredentialInput {
  name: string;
  /** The profile using it (PkiProfile in the Web UI). */
  profile: string;
}
/**
 * Operator signal: the certificate of `generation` is registered with the identity provider (e.g.
 * uploaded to the Entra ID app registration); omitted, the one waiting for registration.
 */
export interface RegisteredPayload {
  generation?: number;
  by?: string;
}
export interface ServiceCredentialState {
  status: PkiStatus;
  activeGeneration?: number;
  pendingGeneration?: number;
  renewAt?: string;
}
export const registeredSignal = defineSignal<[RegisteredPayload?]>('registered');
export const serviceCredentialStateQuery = defineQuery<ServiceCredentialState>('state');

/**
 * Issuing-CA rotation (workflows/ca-rotation.ts), one workflow per profile at a time. Its state is
 * the `CaRotationState` search attribute: `CaRotationState="Paused"` lists the rotations an operator
 * holds back.
 */
export const caRotationWorkflowId = (profile: string) => `ca/${profile}/rotation`;
export const CaRotationStateKey = defineSearchAttributeKey('CaRotationState', SearchAttributeType.KEYWORD);
export type CaRotationState = 'Preparing' | 'Announced' | 'Promoted' | 'RetiringOldCa' | 'Retired' | 'Paused';

export interface CaRotationInput {
  profile: string;
  /** When the next CA becomes the issuing CA (ISO 8601); absent: right after the announcement. */
  promoteAt?: string;
  /** How long the deactivated old key is kept before it is destroyed. */
  retentionSeconds: number;
  /**
   * How long after promotion the old CA may still have been asked to sign (caches, in-flight
   * enrollments) before its last certificate's expiry is read.
   */
  settleSeconds: number;
  /** The profile's current RA certificate (DER, base64): the new CA certifies its public key. */
  raCertificate: string;
  /** The authenticated operator (or `ceremony:<user>`) who started it. */
  requestedBy: string;
}

export interface CaRotationStatus {
  profile: string;
  state: CaRotationState;
  paused: boolean;
  /** The generation being rolled out, and the one it replaces. */
  next?: { generation: number; keyLabel: string };
  previous?: { generation: number; keyLabel: string };
  promoteAt?: string;
  /** When the old CA's last certificate expires (then it is deactivated). */
  oldCaLastExpiry?: string;
  destroyAt?: string;
}

export interface CaRotationPausePayload {
  by?: string;
  reason?: string;
}
export const pauseRotationSignal = defineSignal<[CaRotationPausePayload?]>('pause');
export const resumeRotationSignal = defineSignal<[CaRotationPausePayload?]>('resume');
export const caRotationStateQuery = defineQuery<CaRotationStatus>('state');
