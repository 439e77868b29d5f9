import { createHash } from 'node:crypto';
import { enrollmentInput } from '../../api/scep/pki-operation.js';
import { findProfile } from '../../config/load.js';
import type { CaIssuance } from '../../config/runtime.js';
import { decodePkiMessage } from '../../pki/scep/decode.js';
import { certificateInfo } from '../../pki/x509/certificate.js';
import type { EnrollmentInput } from '../../workflows/definitions.js';
import type { Pipeline } from './pipeline.js';

/**
 * The EnrollmentInput the API builds for a PKCSReq or RenewalReq body, by the product's own decoder
 * and builder: what an older release, or a compromised API, would start a workflow with.
 */
export async function enrollmentInputOf(
  pipeline: Pipeline,
  profile: string,
  pkiMessage: Uint8Array,
  caIssuance?: CaIssuance,
): Promise<EnrollmentInput> {
  const ra = pipeline.ras.get(profile)!;
  const decoded = await decodePkiMessage(pkiMessage, {
    certificates: [ra.raCertificate],
    decrypter: ra.decrypter,
  });
  if (!decoded.ok || !('csr' in decoded.request)) throw new Error('the request does not decode');
  const signerKeySha256 = createHash('sha256')
    .update(certificateInfo(decoded.request.signerCertificate).subjectPublicKeyInfo)
    .digest('hex');
  const input = await enrollmentInput(
    decoded.request,
    findProfile(pipeline.config, profile)!,
    signerKeySha256,
    caIssuance,
  );
  if (!input) throw new Error('no enrollment input');
  return input;
}
