/**
 * The activities the workflows call, as types only (workflows import nothing else from activities/).
 * Implementations live next to this file, one folder per external system.
 */
import type {
  DeviceCertificate,
  EnrollmentInput,
  EnrollmentOutcome,
  IssuedCertificate,
} from '../workflows/definitions.js';

export type MdmVerdict = { verdict: 'approved' } | { verdict: 'rejected'; reason: string };

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

export interface EnrollmentActivities {
  verifyWithMdm(input: { profile: string; transactionId: string; csr: string }): Promise<MdmVerdict>;
  recordEnrollment(input: RecordEnrollmentInput): Promise<void>;
  handOffToLifecycle(input: {
    profile: string;
    deviceId: string;
    certificate: DeviceCertificate;
  }): Promise<void>;
}

/** Run on the `pki-hsm` queue: only hosts holding the CA keys execute them. */
export interface HsmActivities {
  issueCertificate(input: IssueCertificateInput): Promise<IssuedCertificate>;
}
