/**
 * Intune SCEP validation (the role Microsoft's NDES connector plays): Intune made the challenge and
 * put it in the device's SCEP profile, so only Intune can say whether the CSR is the one it targeted.
 * Intune checks the CSR's subject and SANs against the profile it deployed (SubjectNameMismatch
 * otherwise), so what it validated is what it vouches for: the device id is the CSR attribute the
 * profile names (its CN, or the SAN URI IntuneDeviceId://<id>).
 * Wire contract: shared/reference/contracts.md (Intune).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { type IdentityAttributes, vouchedIdentity } from '../../pki/admission/identity.js';
import { certificateInfo } from '../../pki/x509/certificate.js';
import { type CsrInfo, parseCsr } from '../../pki/x509/csr.js';
import type { MdmVerdict } from '../../workflows/activities.js';
import { MdmUnavailableError } from './http.js';
import { CALLER_INFO, IntuneClient, type IntuneClientOptions, type IntuneConfig } from './intune-client.js';
import type { MdmVerifier } from './verifier.js';

export type { IntuneConfig } from './intune-client.js';

const SCEP_API_VERSION = '2018-02-20';
const PKI_CONNECTOR_API_VERSION = '5019-05-05';
/** E_FAIL: Intune only displays it; our reason goes in errorDescription. */
const HRESULT_E_FAIL = 0x80004005 | 0;
const MAX_ERROR_DESCRIPTION = 255;

const scepAnswer = z.object({ code: z.string().min(1), errorDescription: z.string().nullish() });
/** The SAN URI Intune SCEP profiles carry the device id in (IntuneDeviceId://{{DeviceId}}). */
const INTUNE_DEVICE_ID_URI = /^IntuneDeviceId:\/\/(.+)$/i;

/** The attributes of a CSR Intune validated. */
export function intuneAttributes(csr: CsrInfo): IdentityAttributes {
  const intuneDeviceId = csr.subjectAltNames.uri
    .map((uri) => INTUNE_DEVICE_ID_URI.exec(uri)?.[1])
    .find((id) => id !== undefined);
  return {
    ...(csr.commonName ? { commonName: csr.commonName } : {}),
    ...(intuneDeviceId ? { intuneDeviceId } : {}),
    email: csr.subjectAltNames.email,
    dns: csr.subjectAltNames.dns,
    uri: csr.subjectAltNames.uri,
  };
}

export function intuneVerifier(cfg: IntuneConfig, opts: IntuneClientOptions = {}): MdmVerifier {
  const client = new IntuneClient(cfg, opts);
  const scepAction = async (action: string, body: unknown) => {
    const answer = scepAnswer.safeParse(
      await client.post('ScepRequestValidationFEService', `ScepActions/${action}`, SCEP_API_VERSION, body),
    );
    if (!answer.success)
      throw new MdmUnavailableError(`Intune ScepActions/${action}: answer carries no code`);
    return { code: answer.data.code, description: answer.data.errorDescription ?? '' };
  };

  return {
    async verify({ transactionId, csr }): Promise<MdmVerdict> {
      const { code, description } = await scepAction('validateRequest', {
        request: { transactionId, certificateRequest: base64(csr), callerInfo: CALLER_INFO },
      });
      if (code === 'Success') {
        const parsed = await parseCsr(csr);
        if (!parsed.ok) return { verdict: 'rejected', reason: `CSR unreadable: ${parsed.message}` };
        const attributes = intuneAttributes(parsed.csr);
        const deviceId = attributes[cfg.deviceIdFrom];
        if (!deviceId)
          return {
            verdict: 'rejected',
            reason:
              cfg.deviceIdFrom === 'intuneDeviceId'
                ? 'the request carries no SAN URI IntuneDeviceId://<id> to name the device by'
                : 'the request carries no CN to name the device by',
          };
        const identity = vouchedIdentity('intune', deviceId, attributes);
        if (typeof identity === 'string') return { verdict: 'rejected', reason: identity };
        return { verdict: 'approved', identity };
      }
      // A 200 with any other code is Intune's definitive no (ChallengeExpired, SubjectNameMismatch...).
      return { verdict: 'rejected', reason: description ? `${code}: ${description}` : code, code };
    },

    async notifySuccess({ profile, transactionId, csr, certificate }) {
      const info = certificateInfo(certificate);
      const notice = {
        transactionId,
        certificateRequest: base64(csr),
        certificateThumbprint: createHash('sha1').update(certificate).digest('hex').toUpperCase(),
        certificateSerialNumber: info.serialHex.toUpperCase(),
        certificateExpirationDateUtc: info.notAfter.toISOString(),
        issuingCertificateAuthority: info.issuer,
        // Intune echoes caConfiguration in revocation requests: the profile routes them to its CA.
        caConfiguration: profile,
        certificateAuthority: info.issuer,
        callerInfo: CALLER_INFO,
      };
      const { code, description } = await scepAction('successNotification', { notification: notice });
      // Intune did not record the certificate: it must not reach the device (thrown, so retried).
      if (code !== 'Success')
        throw new MdmUnavailableError(
          `Intune refused the success notification: ${code} ${description}`.trim(),
        );
      return {
        mdm: 'intune',
        transactionId,
        serialNumber: notice.certificateSerialNumber,
        issuerName: notice.issuingCertificateAuthority,
        caConfiguration: notice.caConfiguration,
        certificateThumbprint: notice.certificateThumbprint,
      };
    },

    async notifyFailure({ transactionId, csr, reason }) {
      const { code, description } = await scepAction('failureNotification', {
        notification: {
          transactionId,
          certificateRequest: base64(csr),
          hResult: HRESULT_E_FAIL,
          errorDescription: reason.slice(0, MAX_ERROR_DESCRIPTION),
          callerInfo: CALLER_INFO,
        },
      });
      if (code !== 'Success')
        throw new MdmUnavailableError(
          `Intune refused the failure notification: ${code} ${description}`.trim(),
        );
    },
  };
}

/** A revocation Intune asks for (an admin removed the device or the profile). */
export interface IntuneRevocationRequest {
  /** Opaque: send it back in the result. */
  requestContext: string;
  /** As we sent it in successNotification (upper-case hex). */
  serialNumber: string;
  /** serialNumber as certificates.serial_hex stores it (lower-case). */
  serialHex: string;
  issuerName: string;
  /** What we sent as caConfiguration: the profile name. */
  caConfiguration: string | null;
}

/** Intune's CARequestErrorCodes (contracts.md): 0 none, 4000-4007 final, 4100-4103 retryable. */
export const INTUNE_REVOCATION_ERROR = {
  none: 0,
  nonRetryable: 4000,
  certificateNotFound: 4004,
  alreadyRevoked: 4005,
  retryable: 4100,
} as const;

export interface IntuneRevocationResult {
  requestContext: string;
  succeeded: boolean;
  errorCode: number;
  errorMessage: string;
}

const revocationRequests = z.object({
  value: z.array(
    z
      .object({
        requestContext: z.string().min(1),
        serialNumber: z.string().min(1),
        issuerName: z.string(),
        caConfiguration: z.string().nullish(),
      })
      .loose(),
  ),
});

export interface IntuneRevocationClient {
  downloadRevocationRequests(maxRequests: number): Promise<IntuneRevocationRequest[]>;
  uploadRevocationResults(results: IntuneRevocationResult[]): Promise<void>;
}

/** Intune's PKI connector channel: revocations requested by Intune, and what became of them. */
export function intuneRevocationClient(
  cfg: IntuneConfig,
  opts: IntuneClientOptions = {},
): IntuneRevocationClient {
  const client = new IntuneClient(cfg, opts);
  const call = (action: string, body: unknown) =>
    client.post(
      'PkiConnectorFEService',
      `CertificateAuthorityRequests/${action}`,
      PKI_CONNECTOR_API_VERSION,
      body,
    );

  return {
    async downloadRevocationRequests(maxRequests) {
      if (!Number.isInteger(maxRequests) || maxRequests < 1 || maxRequests > 500)
        throw new RangeError(`maxRequests must be an integer from 1 to 500, not ${maxRequests}`);
      const answer = revocationRequests.safeParse(
        await call('downloadRevocationRequests', { downloadParameters: { maxRequests, issuerName: null } }),
      );
      if (!answer.success)
        throw new MdmUnavailableError('Intune downloadRevocationRequests: answer is not a request list');
      return answer.data.value.map((r) => ({
        requestContext: r.requestContext,
        serialNumber: r.serialNumber,
        serialHex: r.serialNumber.toLowerCase(),
        issuerName: r.issuerName,
        caConfiguration: r.caConfiguration ?? null,
      }));
    },

    async uploadRevocationResults(results) {
      if (results.length === 0) return;
      const answer = await call('uploadRevocationResults', {
        results: results.map((r) => ({
          requestContext: r.requestContext,
          succeeded: r.succeeded,
          // The wire carries the code as a decimal string ("0").
          errorCode: String(r.errorCode),
          errorMessage: r.errorMessage,
        })),
      });
      if ((answer as { value?: unknown } | null)?.value !== true)
        throw new MdmUnavailableError('Intune uploadRevocationResults: not acknowledged (value is not true)');
    },
  };
}

const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
