/**
 * One CA interface (DESIGN.md "One CA interface"), like a database driver behind one API: each
 * adapter (local-hsm/, globalsign-atlas/) is built once per profile and runs its operations on the
 * task queue it needs. Everything around it (the checks before signing, storing the certificate,
 * recording a revocation) is done once, in ./index.ts, for every adapter.
 */
import type { RevocationReason } from '../../workflows/definitions.js';
import type { IssuanceRequest } from './issuance-request.js';

export interface RevokedCertificate {
  serialHex: string;
  revokedAt: Date;
  reason: RevocationReason;
  /** False when it was revoked already (a retry, or a second operator). */
  newlyRevoked: boolean;
}

export interface CaAdapter {
  /** The task queue this adapter's operations run on (`pki-hsm` where a key is in our HSM). */
  readonly queue: string;
  /** The issuing CA names (certificates.issuing_ca) whose certificates it answers for. */
  owns(issuingCa: string): boolean;
  /**
   * Signs (or has the upstream CA sign) a checked request. Idempotent per enrollment: a retry never
   * yields a second, different certificate that could escape.
   */
  issue(request: IssuanceRequest): Promise<{ der: Uint8Array; issuingCa: string }>;
  /** Called after the revocations are recorded in the database: the CA must now say so too. */
  revoked(issuingCa: string, certificates: RevokedCertificate[]): Promise<void>;
  /** Re-signs the CA's CRL; adapters whose CA publishes its own CRL have none. */
  publishCrl?(issuingCa: string): Promise<{ crlNumber: number; nextUpdate: string }>;
  /** Certifies (or renews) the delegated OCSP responder of its CA; adapters whose CA runs its own OCSP have none. */
  certifyOcspResponder?(issuingCa: string): Promise<'certified' | 'current' | 'no-key-registered'>;
}
