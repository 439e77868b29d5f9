/**
 * SCEP (RFC 8894) messages as the rest of the product sees them: discriminated unions, so a poll can
 * never carry a CSR and a FAILURE can never carry a certificate.
 */

export type MessageTypeName = 'PKCSReq' | 'RenewalReq' | 'CertPoll' | 'GetCert' | 'GetCRL';

export const MESSAGE_TYPE_CODES = {
  CertRep: 3,
  RenewalReq: 17,
  PKCSReq: 19,
  CertPoll: 20,
  GetCert: 21,
  GetCRL: 22,
} as const;

export type FailInfo = 'badAlg' | 'badMessageCheck' | 'badRequest' | 'badTime' | 'badCertId';

export const FAIL_INFO_CODES: Record<FailInfo, number> = {
  badAlg: 0,
  badMessageCheck: 1,
  badRequest: 2,
  badTime: 3,
  badCertId: 4,
};

/** Content-encryption algorithms a client may use for the pkcsPKIEnvelope. */
export type ContentCipher = 'des-cbc' | 'des-ede3-cbc' | 'aes-128-cbc' | 'aes-192-cbc' | 'aes-256-cbc';

/** Fields every PKIOperation request carries once its signature has been checked. */
export interface RequestEnvelope {
  /** Any text the client chose (hex, base64, decimal...); used verbatim in workflow ids. */
  transactionId: string;
  senderNonce: Uint8Array;
  /** DER of the certificate that signed the request (self-signed on first enrollment). */
  signerCertificate: Uint8Array;
  /** Digest the client used for its signature: the CertRep answers with at least as strong a one. */
  digest: 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512';
  /** Cipher the client used for its envelope: evidence of what it can decrypt. */
  contentCipher: ContentCipher;
}

export interface IssuerAndSerial {
  /** DER of the issuer Name. */
  issuer: Uint8Array;
  /** Serial number as unsigned big-endian bytes. */
  serialNumber: Uint8Array;
}

export type ScepRequest =
  | (RequestEnvelope & { messageType: 'PKCSReq' | 'RenewalReq'; csr: Uint8Array })
  | (RequestEnvelope & { messageType: 'CertPoll'; issuer: Uint8Array; subject: Uint8Array })
  | (RequestEnvelope & { messageType: 'GetCert' | 'GetCRL'; issuerAndSerial: IssuerAndSerial });

/**
 * Why a PKIOperation could not be decoded. `reply` says how to answer:
 * - 'http-400': nothing trustworthy was read (garbage, truncated DER, unsigned): plain HTTP error.
 * - 'certrep-failure': the message was read far enough to know who asked, so the device gets a
 *   signed CertRep FAILURE with `failInfo` (RFC 8894 3.3.2.2).
 */
export type ScepDecodeError =
  | { reply: 'http-400'; message: string }
  | {
      reply: 'certrep-failure';
      failInfo: FailInfo;
      message: string;
      transactionId: string;
      senderNonce: Uint8Array;
      signerCertificate: Uint8Array;
      digest: RequestEnvelope['digest'];
    };

export type ScepDecodeResult = { ok: true; request: ScepRequest } | { ok: false; error: ScepDecodeError };

interface CertRepBase {
  transactionId: string;
  /** The request's senderNonce, echoed. */
  recipientNonce: Uint8Array;
  /** Digest for the CertRep signature. */
  digest: RequestEnvelope['digest'];
}

export type CertRep =
  | (CertRepBase & {
      status: 'SUCCESS';
      /** Certificates for the degenerate certs-only content; the issued one first. Or a CRL for GetCRL. */
      content: { kind: 'certificates'; certificates: Uint8Array[] } | { kind: 'crl'; crl: Uint8Array };
      /** The device's signer certificate: the envelope is encrypted to its public key. */
      recipientCertificate: Uint8Array;
      contentCipher: ContentCipher;
    })
  | (CertRepBase & { status: 'FAILURE'; failInfo: FailInfo })
  | (CertRepBase & { status: 'PENDING' });
