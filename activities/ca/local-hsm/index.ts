/**
 * Our own CA: the profile's issuing key lives in the HSM (the CA token, opened only by `pki-hsm`
 * processes) and signs there: certificates and CRLs.
 */
import type { LocalCaConfig, PkiConfig, Profile } from '../../../config/profile-types.js';
import { runtimeSettings } from '../../../config/runtime.js';
import type { Database } from '../../../db/client.js';
import type { HsmToken } from '../../../hsm/token.js';
import { buildCertificate } from '../../../pki/x509/certificate.js';
import { encodeName } from '../../../pki/x509/name.js';
import { HSM_TASK_QUEUE } from '../../../workflows/definitions.js';
import type { CaAdapter } from '../adapter.js';
import { latestCrlLists, publishCrl } from './crl.js';
import { certifyOcspResponder } from './ocsp-responder.js';
import { type RandomSource, reserveSerial } from './serials.js';

export interface LocalHsmDeps {
  token: HsmToken;
  config: PkiConfig;
  db: Database;
  /** Tests force serial clashes with their own source; node:crypto otherwise. */
  random?: RandomSource;
}

export function localHsmAdapter(deps: LocalHsmDeps, profile: Profile, ca: LocalCaConfig): CaAdapter {
  const issuingCertificate = deps.token.certificate(ca.keyLabel).then((der) => {
    if (!der)
      throw new Error(`HSM token "${deps.token.tokenLabel}" holds no certificate for "${ca.keyLabel}"`);
    return der;
  });
  const signer = deps.token.signer(ca.keyLabel);
  // Keep a rejected lookup from surfacing as an unhandled rejection before the first issue().
  issuingCertificate.catch(() => {});
  signer.catch(() => {});
  // Where relying parties check revocation (the API serves both).
  const publicBaseUrl = runtimeSettings().publicBaseUrl;
  const crlUrl = `${publicBaseUrl}/crl/${encodeURIComponent(profile.name)}.crl`;
  const ocspUrl = `${publicBaseUrl}/ocsp`;

  return {
    queue: HSM_TASK_QUEUE,
    owns: (issuingCa) => issuingCa === ca.keyLabel,

    async issue(request) {
      const { serialHex } = await reserveSerial(
        deps.db,
        {
          issuingCa: ca.keyLabel,
          enrollmentId: request.enrollmentId,
          notBefore: request.notBefore,
          notAfter: request.notAfter,
        },
        deps.random,
      );
      const usages = profile.template.keyUsages;
      const der = await buildCertificate({
        serialNumber: Buffer.from(serialHex, 'hex'),
        subject: encodeName(request.certificate.subject),
        subjectPublicKeyInfo: request.csr.subjectPublicKeyInfo,
        notBefore: request.notBefore,
        notAfter: request.notAfter,
        issuer: { kind: 'ca', certificate: await issuingCertificate, signer: await signer },
        extensions: {
          // RFC 5480: an EC key cannot encipher keys.
          keyUsages:
            request.csr.publicKey.algorithm === 'ec' ? usages.filter((u) => u !== 'keyEncipherment') : usages,
          extendedKeyUsages: profile.template.extendedKeyUsages,
          subjectAltNames: request.certificate.subjectAltNames,
          crlDistributionPoints: [crlUrl],
          authorityInfoAccessOcsp: [ocspUrl],
        },
      });
      return { der, issuingCa: ca.keyLabel };
    },

    async revoked(issuingCa, certificates) {
      // A retry whose first attempt recorded the revocation but died before the CRL: publish now.
      const fresh = certificates.some((c) => c.newlyRevoked);
      if (
        fresh ||
        !(await latestCrlLists(
          deps.db,
          issuingCa,
          certificates.map((c) => c.serialHex),
        ))
      )
        await publishCrl(deps, { issuingCa });
    },

    publishCrl: (issuingCa) => publishCrl(deps, { issuingCa }),
    certifyOcspResponder: (issuingCa) => certifyOcspResponder(deps, issuingCa),
  };
}
