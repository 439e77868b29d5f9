import type { MdmVerdict } from '../../workflows/activities.js';

export interface MdmRequest {
  profile: string;
  transactionId: string;
  /** DER PKCS#10 as the device sent it (it carries the challenge password). */
  csr: Uint8Array;
}

export interface MdmSuccessNotice extends MdmRequest {
  /** DER of the issued certificate (its issuer and serial are what the MDM records). */
  certificate: Uint8Array;
}

export interface MdmFailureNotice extends MdmRequest {
  /** Short reason, shown to the MDM's admins (Intune keeps 255 characters). */
  reason: string;
}

/**
 * Asks the device's management system whether this request really comes from an enrolled device,
 * and who that device is (the identity it vouches for), and tells it how the request ended. One adapter per product (activities/mdm/<product>.ts).
 *
 * Contract: a definitive answer is a verdict (rejected with the MDM's reason); an infrastructure
 * failure (network, timeout, 401, 5xx, unreadable body) THROWS, so Temporal retries it and, past
 * the profile's budget, the enrollment escalates. Never approve on doubt.
 */
export interface MdmVerifier {
  verify(request: MdmRequest): Promise<MdmVerdict>;
  /**
   * Tells the MDM the certificate was issued, before the device gets it (Intune: a failed success
   * notification means no certificate). Returns what must be remembered about the certificate for
   * later revocation requests from the MDM (stored with it), or undefined.
   */
  notifySuccess?(notice: MdmSuccessNotice): Promise<Record<string, unknown> | undefined>;
  notifyFailure?(notice: MdmFailureNotice): Promise<void>;
}
