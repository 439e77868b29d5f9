/**
 * The names operators and the API see (DESIGN.md "Names operators see"), and the data that crosses
 * the workflow boundary. Plain JSON only: it is stored in Temporal's history.
 */

import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

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
  fingerprint: RequestFingerprint;
  deviceId: string;
  outcome: EnrollmentOutcome | undefined;
}

/**
 * The API's start-or-attach: resolves with the outcome once there is one. Its validator refuses a
 * request whose fingerprint differs from the one the workflow was started with.
 */
export const awaitOutcomeUpdate = defineUpdate<EnrollmentOutcome, [RequestFingerprint]>('awaitOutcome');
export const enrollmentStateQuery = defineQuery<EnrollmentState>('state');

export interface DeviceLifecycleInput {
  profile: string;
  deviceId: string;
  /** Renewal point as a fraction of the certificate's lifetime (profile setting). */
  renewalFraction: number;
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
  /** Serials already applied, so a redelivered signal is a no-op. */
  seenSerials: string[];
}

export const certificateIssuedSignal = defineSignal<[DeviceCertificate]>('certificateIssued');
export const deviceStateQuery = defineQuery<DeviceLifecycleState>('state');
