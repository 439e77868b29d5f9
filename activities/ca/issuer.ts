import type { IssuedCertificate } from '../../workflows/definitions.js';
import type { IssueCertificateInput } from '../types.js';

/**
 * Turns an approved CSR into a certificate. Must be idempotent per enrollment: a retried call
 * never yields a second, different certificate.
 */
export interface CertificateIssuer {
  issue(input: IssueCertificateInput): Promise<IssuedCertificate>;
}
