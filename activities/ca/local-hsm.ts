import { ApplicationFailure } from '@temporalio/common';
import type { LocalCaConfig, PkiConfig, Profile } from '../../config/profile-types.js';
import { runtimeSettings } from '../../config/runtime.js';
import { loadProfileChain } from '../../hsm/provision.js';
import type { HsmToken } from '../../hsm/token.js';
import { buildCertificate, certificateInfo } from '../../pki/x509/certificate.js';
import { type CsrPublicKey, parseCsr } from '../../pki/x509/csr.js';
import type { IssuedCertificate } from '../../workflows/definitions.js';
import type { CertificateIssuer } from './issuer.js';

/**
 * Our own CA: the issuing key of the profile lives in the HSM and signs there.
 * Idempotent by construction: serial and validity come from the workflow, so a retry signs the same
 * TBSCertificate again.
 */
export function localHsmIssuer(
  token: HsmToken,
  config: PkiConfig,
  profile: Profile,
  ca: LocalCaConfig,
): CertificateIssuer {
  const issuingCertificate = loadProfileChain(token, config, profile.name).then((chain) => chain.issuing);
  const signer = token.signer(ca.keyLabel);
  // Keep a rejected lookup from surfacing as an unhandled rejection before the first issue().
  issuingCertificate.catch(() => {});
  signer.catch(() => {});
  // Where relying parties check revocation (api/revocation-routes.ts serves both).
  const publicBaseUrl = runtimeSettings().publicBaseUrl;
  const crlUrl = `${publicBaseUrl}/crl/${encodeURIComponent(profile.name)}.crl`;
  const ocspUrl = `${publicBaseUrl}/ocsp`;

  return {
    async issue(input): Promise<IssuedCertificate> {
      const parsed = await parseCsr(Buffer.from(input.csr, 'base64'));
      if (!parsed.ok || !parsed.csr.signatureValid) {
        throw ApplicationFailure.nonRetryable(
          parsed.ok ? 'CSR signature does not verify' : parsed.message,
          'InvalidCsr',
        );
      }
      const csr = parsed.csr;
      const der = await buildCertificate({
        serialNumber: Buffer.from(input.serialHex, 'hex'),
        subject: csr.subject,
        subjectPublicKeyInfo: csr.subjectPublicKeyInfo,
        notBefore: new Date(input.notBefore),
        notAfter: new Date(input.notAfter),
        issuer: { kind: 'ca', certificate: await issuingCertificate, signer: await signer },
        extensions: {
          keyUsages: keyUsagesFor(csr.publicKey, profile.template.keyUsages),
          extendedKeyUsages: profile.template.extendedKeyUsages,
          subjectAltNames: csr.subjectAltNames,
          crlDistributionPoints: [crlUrl],
          authorityInfoAccessOcsp: [ocspUrl],
        },
      });
      const info = certificateInfo(der);
      return {
        certificate: Buffer.from(der).toString('base64'),
        serialHex: info.serialHex,
        issuingCa: ca.keyLabel,
        notBefore: info.notBefore.toISOString(),
        notAfter: info.notAfter.toISOString(),
        sha256Hex: info.sha256Hex,
      };
    },
  };
}

/** RFC 5480: an EC key cannot encipher keys, so keyEncipherment is dropped for EC requests. */
function keyUsagesFor(key: CsrPublicKey, usages: Profile['template']['keyUsages']) {
  return key.algorithm === 'ec' ? usages.filter((u) => u !== 'keyEncipherment') : usages;
}
