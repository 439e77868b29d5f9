import type { MdmVerdict } from '../types.js';

/** Asks the device's management system whether this request really comes from an enrolled device. */
export interface MdmVerifier {
  /**
   * A definitive answer is a verdict; an infrastructure failure (network, 5xx) throws, so Temporal
   * retries it. Never approve on doubt: no verdict, no certificate.
   */
  verify(request: { transactionId: string; csr: Uint8Array }): Promise<MdmVerdict>;
}
