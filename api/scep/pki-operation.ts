import { createHash } from 'node:crypto';
import { enrollmentPolicy } from '../../config/policies.js';
import type { Profile } from '../../config/profile-types.js';
import type { CaIssuance } from '../../config/runtime.js';
import { decodePkiMessage } from '../../pki/scep/decode.js';
import { encodeCertRep } from '../../pki/scep/encode.js';
import type { CertRep, ContentCipher, FailInfo, ScepRequest } from '../../pki/scep/types.js';
import { certificateInfo } from '../../pki/x509/certificate.js';
import { parseCsr } from '../../pki/x509/csr.js';
import { type EnrollmentInput, enrollmentWorkflowId } from '../../workflows/definitions.js';
import type { EnrollmentGateway, GatewayAnswer } from '../enrollment-gateway.js';
import type { RequestFields } from '../http/request-log.js';
import type { ProfileRa } from '../ra.js';
import type { RevocationService } from '../revocation/service.js';

/** The answer to one PKIOperation: a signed CertRep, or an HTTP error when nothing could be trusted. */
export type PkiOperationReply =
  | { kind: 'certrep'; body: Uint8Array; status: CertRep['status']; failInfo?: FailInfo }
  | { kind: 'http-error'; status: 400; message: string };

/** transactionIDs become workflow ids: bounded and printable. */
const TRANSACTION_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * One PKIOperation, start to finish: decode and check the message (garbage never reaches Temporal),
 * ask the gateway, and turn the answer into a CertRep signed by the RA.
 */
export async function handlePkiOperation(
  body: Uint8Array,
  profile: Profile,
  ra: ProfileRa,
  deps: {
    gateway: EnrollmentGateway;
    revocation?: Pick<RevocationService, 'findCertificate' | 'latestCrl'>;
    caIssuance?: CaIssuance;
  },
  /** Told the ids of the request as they are learnt, for its log line (api/http/request-log.ts). */
  note: (ids: RequestFields) => void = () => {},
): Promise<PkiOperationReply> {
  const view = await ra.current();
  const decoded = await decodePkiMessage(body, {
    certificates: view.raCertificates,
    decrypter: ra.decrypter,
  });
  if (!decoded.ok) {
    const error = decoded.error;
    if (error.reply === 'http-400') return { kind: 'http-error', status: 400, message: error.message };
    return certRep(ra, {
      status: 'FAILURE',
      failInfo: error.failInfo,
      transactionId: error.transactionId,
      recipientNonce: error.senderNonce,
      digest: error.digest,
    });
  }
  const request = decoded.request;
  note({ transactionId: request.transactionId, messageType: request.messageType });
  const failure = (failInfo: FailInfo) =>
    certRep(ra, {
      status: 'FAILURE',
      failInfo,
      transactionId: request.transactionId,
      recipientNonce: request.senderNonce,
      digest: request.digest,
    });
  if (!TRANSACTION_ID.test(request.transactionId)) return failure('badRequest');
  // Single DES (56-bit keys) only where the profile knowingly accepts it (micromdm scepclient 2.1.0).
  if (request.contentCipher === 'des-cbc' && !profile.legacyCiphers) return failure('badAlg');

  const signerKeySha256 = sha256Hex(certificateInfo(request.signerCertificate).subjectPublicKeyInfo);
  let answer: GatewayAnswer;
  switch (request.messageType) {
    case 'PKCSReq':
    case 'RenewalReq': {
      const input = await enrollmentInput(request, profile, signerKeySha256, deps.caIssuance);
      if (!input) return failure('badMessageCheck');
      note({
        workflowId: enrollmentWorkflowId(input.profile, input.transactionId),
        claimedDeviceId: input.claimedDeviceId,
      });
      answer = await deps.gateway.submit(input, profile.enrollmentWaitMs);
      break;
    }
    case 'CertPoll':
      answer = await deps.gateway.poll(profile.name, transactionKey(request), signerKeySha256);
      break;
    case 'GetCert':
    case 'GetCRL': {
      // RFC 8894 3.3.3 / 3.3.4: issuerAndSerial names a certificate we issued; the answer is that
      // certificate, or the current CRL of its CA, encrypted to the requester.
      if (!deps.revocation) return failure('badRequest');
      const { issuer, serialNumber } = request.issuerAndSerial;
      const found = await deps.revocation.findCertificate(issuer, serialNumber);
      if (!found) return failure('badCertId');
      let content: Extract<CertRep, { status: 'SUCCESS' }>['content'];
      if (request.messageType === 'GetCert') {
        content = { kind: 'certificates', certificates: [found.der] };
      } else {
        const crl = await deps.revocation.latestCrl(found.issuingCa);
        if (!crl) return failure('badCertId');
        content = { kind: 'crl', crl };
      }
      return certRep(ra, {
        status: 'SUCCESS',
        transactionId: request.transactionId,
        recipientNonce: request.senderNonce,
        digest: request.digest,
        content,
        recipientCertificate: request.signerCertificate,
        contentCipher: responseCipher(request.contentCipher),
      });
    }
  }

  switch (answer.kind) {
    case 'pending':
      return certRep(ra, {
        status: 'PENDING',
        transactionId: request.transactionId,
        recipientNonce: request.senderNonce,
        digest: request.digest,
      });
    case 'mismatch':
      return failure('badRequest');
    case 'unknown-transaction':
      return failure('badCertId');
    case 'outcome': {
      const outcome = answer.outcome;
      if (outcome.status === 'FAILURE') return failure(outcome.failInfo);
      return certRep(ra, {
        status: 'SUCCESS',
        transactionId: request.transactionId,
        recipientNonce: request.senderNonce,
        digest: request.digest,
        content: {
          kind: 'certificates',
          // The CA that signed it (around a promotion, not necessarily the one GetCACert serves).
          certificates: [
            Buffer.from(outcome.issued.certificate, 'base64'),
            (await ra.issuerOf?.(outcome.issued.issuingCa)) ?? view.issuingCertificate,
          ],
        },
        recipientCertificate: request.signerCertificate,
        contentCipher: responseCipher(request.contentCipher),
      });
    }
  }
}

/**
 * Reads the CSR far enough to start a workflow; undefined when it is unreadable or its signature fails.
 * Exported for the upgrade test, which starts a transaction the way a previous release did.
 */
export async function enrollmentInput(
  request: Extract<ScepRequest, { csr: Uint8Array }>,
  profile: Profile,
  signerKeySha256: string,
  caIssuance?: CaIssuance,
): Promise<EnrollmentInput | undefined> {
  const parsed = await parseCsr(request.csr);
  if (!parsed.ok || !parsed.csr.signatureValid) return undefined;
  const csr = parsed.csr;
  return {
    profile: profile.name,
    transactionId: transactionKey(request),
    messageType: request.messageType,
    // Only shown until the verifier says who the device is.
    claimedDeviceId: (csr.commonName ?? csr.subjectText).slice(0, 256) || '(no subject)',
    csr: Buffer.from(request.csr).toString('base64'),
    csrSummary: {
      subject: csr.subjectText,
      commonName: csr.commonName,
      publicKey: csr.publicKey,
      subjectAttributes: csr.subjectAttributes,
      subjectAltNames: csr.subjectAltNames,
      requestsCa: csr.requestsCa,
    },
    fingerprint: { csrSha256: sha256Hex(request.csr), signerKeySha256 },
    policy: enrollmentPolicy(profile, caIssuance),
    ...(isRenewal(request)
      ? { renewalSigner: Buffer.from(request.signerCertificate).toString('base64') }
      : {}),
  };
}

/**
 * RenewalReq, or a PKCSReq signed by a certificate that is not self-signed (RFC 8894 3.3.1.2: clients
 * renew either way): the signer must then be checked as ours, valid, and this device's.
 */
function isRenewal(request: ScepRequest): boolean {
  if (request.messageType === 'RenewalReq') return true;
  const signer = certificateInfo(request.signerCertificate);
  return signer.issuer !== signer.subject;
}

/**
 * The transaction (workflow) key. A renewal, and a CertPoll signed like one, gets its own, tied to
 * the signing certificate: micromdm scepclient derives the transactionID from the key, so its
 * RenewalReq with the same key repeats the transactionID of the first PKCSReq and would otherwise be
 * answered, as a resend, with the certificate it is renewing. A resent renewal still attaches.
 */
function transactionKey(request: ScepRequest): string {
  if (request.messageType === 'GetCert' || request.messageType === 'GetCRL' || !isRenewal(request))
    return request.transactionId;
  return `${request.transactionId}~renewal-${sha256Hex(request.signerCertificate).slice(0, 16)}`;
}

/** The cipher the device itself used is the one it has shown it can decrypt. */
function responseCipher(requestCipher: ContentCipher): ContentCipher {
  return requestCipher;
}

async function certRep(ra: ProfileRa, rep: CertRep): Promise<PkiOperationReply> {
  const view = await ra.current();
  const signer = {
    certificate: view.raCertificate,
    chain: view.raChain,
    signer: ra.signer,
  };
  return {
    kind: 'certrep',
    body: await encodeCertRep(rep, signer),
    status: rep.status,
    ...(rep.status === 'FAILURE' ? { failInfo: rep.failInfo } : {}),
  };
}

const sha256Hex = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
