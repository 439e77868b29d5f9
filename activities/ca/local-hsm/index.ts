/**
 * Our own CA: the profile's issuing key lives in the HSM (the CA token, opened only by `pki-hsm`
 * processes) and signs there: certificates and CRLs.
 */
import type { LocalCaConfig, PkiConfig, Profile } from '../../../config/profile-types.js';
import { runtimeSettings } from '../../../config/runtime.js';
import type { Database } from '../../../db/client.js';
import type { HsmToken } from '../../../hsm/token.js';
import type { Signer } from '../../../pki/keys.js';
import { buildCertificate } from '../../../pki/x509/certificate.js';
import { encodeName } from '../../../pki/x509/name.js';
import { HSM_TASK_QUEUE } from '../../../workflows/definitions.js';
import type { CaAdapter } from '../adapter.js';
import { latestCrlLists, publishCrl } from './crl.js';
import { type GenerationReader, generationReader, isGenerationOf, issuingGeneration } from './generations.js';
import { certifyOcspResponder } from './ocsp-responder.js';
import { type RandomSource, reserveSerial } from './serials.js';

export interface LocalHsmDeps {
  token: HsmToken;
  config: PkiConfig;
  db: Database;
  /** Tests force serial clashes with their own source; node:crypto otherwise. */
  random?: RandomSource;
  /** The profile's CA generations; a short-lived cache over the database by default. */
  generations?: GenerationReader;
}

/**
 * The CRL distribution point of a generation: generation 1 keeps the URL certificates carried
 * before rotation existed; each later one has its own, so a certificate always names its issuer's CRL.
 */
export function crlUrl(publicBaseUrl: string, profile: string, generation: number): string {
  const name = encodeURIComponent(profile);
  return generation === 1
    ? `${publicBaseUrl}/crl/${name}.crl`
    : `${publicBaseUrl}/crl/${name}/${generation}.crl`;
}

export function localHsmAdapter(deps: LocalHsmDeps, profile: Profile, ca: LocalCaConfig): CaAdapter {
  // Which generation signs is read per issuance (briefly cached): a promotion needs no restart.
  const generations = deps.generations ?? generationReader(deps.db);
  const keys = new Map<string, Promise<{ certificate: Uint8Array; signer: Signer }>>();
  const keyOf = (label: string) => {
    let key = keys.get(label);
    if (!key) {
      key = Promise.all([deps.token.certificate(label), deps.token.signer(label)]).then(
        ([certificate, signer]) => {
          if (!certificate)
            throw new Error(`HSM token "${deps.token.tokenLabel}" holds no certificate for "${label}"`);
          return { certificate, signer };
        },
      );
      keys.set(label, key);
      // A failed lookup (a key not there yet) is tried again next time.
      key.catch(() => keys.delete(label));
    }
    return key;
  };
  // Where relying parties check revocation (the API serves both).
  const publicBaseUrl = runtimeSettings().publicBaseUrl;
  const ocspUrl = `${publicBaseUrl}/ocsp`;

  return {
    queue: HSM_TASK_QUEUE,
    owns: (issuingCa) => isGenerationOf(ca.keyLabel, issuingCa),

    async issue(request) {
      const rows = await generations(profile.name);
      const { serialHex, issuingCa } = await reserveSerial(
        deps.db,
        {
          // A retry of an enrollment that reserved its serial before a promotion signs with that CA.
          issuingCa: (reserved) => {
            const current =
              reserved && isGenerationOf(ca.keyLabel, reserved)
                ? rows.find((r) => r.keyLabel === reserved)
                : issuingGeneration(rows);
            return current?.keyLabel ?? reserved ?? ca.keyLabel;
          },
          enrollmentId: request.enrollmentId,
          notBefore: request.notBefore,
          notAfter: request.notAfter,
        },
        deps.random,
      );
      const { certificate, signer } = await keyOf(issuingCa);
      const usages = profile.template.keyUsages;
      const der = await buildCertificate({
        serialNumber: Buffer.from(serialHex, 'hex'),
        subject: encodeName(request.certificate.subject),
        subjectPublicKeyInfo: request.csr.subjectPublicKeyInfo,
        notBefore: request.notBefore,
        notAfter: request.notAfter,
        issuer: { kind: 'ca', certificate, signer },
        extensions: {
          // RFC 5480: an EC key cannot encipher keys.
          keyUsages:
            request.csr.publicKey.algorithm === 'ec' ? usages.filter((u) => u !== 'keyEncipherment') : usages,
          extendedKeyUsages: profile.template.extendedKeyUsages,
          subjectAltNames: request.certificate.subjectAltNames,
          crlDistributionPoints: [
            crlUrl(publicBaseUrl, profile.name, rows.find((r) => r.keyLabel === issuingCa)?.generation ?? 1),
          ],
          authorityInfoAccessOcsp: [ocspUrl],
        },
      });
      return { der, issuingCa };
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
