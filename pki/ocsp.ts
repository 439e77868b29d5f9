/**
 * OCSP (RFC 6960): reading requests and building CA-signed responses (the issuing CA answers for its
 * own certificates, RFC 6960 2.2), with pkijs. The signature comes from a Signer (the HSM).
 */
import { createHash } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { HashName, Signer } from './keys.js';
import type { RevocationReason } from './x509/crl.js';
import { REASON_CODES, unsignedHex } from './x509/crl.js';
import { toArrayBuffer } from './x509/name.js';
import { signTbs, wholeSeconds } from './x509/signed-tbs.js';

const ID_PKIX_OCSP_BASIC = '1.3.6.1.5.5.7.48.1.1';
const ID_PKIX_OCSP_NONCE = '1.3.6.1.5.5.7.48.1.2';

const HASH_OIDS: Record<string, HashName> = {
  '1.3.14.3.2.26': 'SHA-1',
  '2.16.840.1.101.3.4.2.1': 'SHA-256',
  '2.16.840.1.101.3.4.2.2': 'SHA-384',
  '2.16.840.1.101.3.4.2.3': 'SHA-512',
};

const NODE_HASHES: Record<HashName, string> = {
  'SHA-1': 'sha1',
  'SHA-256': 'sha256',
  'SHA-384': 'sha384',
  'SHA-512': 'sha512',
};

/** More CertIDs than any client sends in one request: refused rather than looked up. */
export const MAX_OCSP_REQUESTS = 20;
/** RFC 8954: a nonce is 1 to 32 octets. */
const MAX_NONCE_BYTES = 32;

/** RFC 6960 4.2.1 OCSPResponseStatus values the responder answers with besides successful. */
export type OcspErrorStatus = 'malformedRequest' | 'internalError' | 'tryLater' | 'unauthorized';

const RESPONSE_STATUS: Record<OcspErrorStatus | 'successful', number> = {
  successful: 0,
  malformedRequest: 1,
  internalError: 2,
  tryLater: 3,
  unauthorized: 6,
};

export interface OcspCertRequest {
  /** DER of the CertID exactly as received: echoed in the answer. */
  certId: Uint8Array;
  issuerNameHash: Uint8Array;
  issuerKeyHash: Uint8Array;
  /** Dotted OID of the CertID hash. */
  hashAlgorithm: string;
  /** The hash, when it is one this responder can compute (otherwise the status is 'unknown'). */
  hash: HashName | undefined;
  serialHex: string;
}

export type OcspRequestParse =
  | {
      ok: true;
      requests: OcspCertRequest[];
      /** The nonce extension's value as received (extnValue contents), echoed verbatim. */
      nonce?: Uint8Array;
    }
  | { ok: false; message: string };

export type OcspCertStatus = 'good' | 'unknown' | { revoked: { at: Date; reason: RevocationReason } };

export interface OcspSingleAnswer {
  /** DER CertID from the request (OcspCertRequest.certId). */
  certId: Uint8Array;
  status: OcspCertStatus;
  thisUpdate: Date;
  nextUpdate?: Date;
}

export interface OcspResponseParams {
  /**
   * The certificate of the key that signs: a delegated responder's, issued by the CA the answers
   * are about (RFC 6960 4.2.2.2); it travels in the response so relying parties can check it.
   */
  responderCertificate: Uint8Array;
  signer: Signer;
  producedAt: Date;
  responses: OcspSingleAnswer[];
  nonce?: Uint8Array;
}

/** Reads an OCSPRequest; never throws. Signed requests are accepted, their signature ignored. */
export function parseOcspRequest(der: Uint8Array): OcspRequestParse {
  try {
    if (der.length === 0) return { ok: false, message: 'empty OCSP request' };
    const parsed = asn1js.fromBER(toArrayBuffer(der));
    if (parsed.offset === -1) return { ok: false, message: `not DER: ${parsed.result.error}` };
    if (parsed.offset !== der.length) return { ok: false, message: 'trailing bytes after the OCSP request' };
    const request = new pkijs.OCSPRequest({ schema: parsed.result });
    const list = request.tbsRequest.requestList;
    if (list.length === 0) return { ok: false, message: 'OCSP request lists no certificate' };
    if (list.length > MAX_OCSP_REQUESTS) {
      return {
        ok: false,
        message: `OCSP request lists ${list.length} certificates (at most ${MAX_OCSP_REQUESTS})`,
      };
    }
    const requests = list.map((r): OcspCertRequest => {
      const id = r.reqCert;
      const serial = id.serialNumber.valueBlock.valueHexView;
      if (serial.length === 0 || serial.length > 21)
        throw new RangeError('CertID serial number out of range');
      return {
        certId: new Uint8Array(id.toSchema().toBER()),
        issuerNameHash: new Uint8Array(id.issuerNameHash.valueBlock.valueHexView),
        issuerKeyHash: new Uint8Array(id.issuerKeyHash.valueBlock.valueHexView),
        hashAlgorithm: id.hashAlgorithm.algorithmId,
        hash: HASH_OIDS[id.hashAlgorithm.algorithmId],
        serialHex: unsignedHex(serial),
      };
    });
    const nonceExt = request.tbsRequest.requestExtensions?.find((e) => e.extnID === ID_PKIX_OCSP_NONCE);
    if (!nonceExt) return { ok: true, requests };
    const nonce = new Uint8Array(nonceExt.extnValue.valueBlock.valueHexView);
    // OpenSSL and RFC 8954 wrap the random octets in an OCTET STRING; older clients send them bare.
    const inner = asn1js.fromBER(toArrayBuffer(nonce));
    const octets =
      inner.offset === nonce.length && inner.result instanceof asn1js.OctetString
        ? inner.result.valueBlock.valueHexView.length
        : nonce.length;
    if (octets < 1 || octets > MAX_NONCE_BYTES) {
      return { ok: false, message: `OCSP nonce of ${octets} octets (RFC 8954: 1 to ${MAX_NONCE_BYTES})` };
    }
    return { ok: true, requests, nonce };
  } catch (e) {
    return { ok: false, message: `malformed OCSP request: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** Whether a requested CertID names `issuerCertificate` as issuer (name and key hashes, RFC 6960 4.1.1). */
export function certIdNamesIssuer(request: OcspCertRequest, issuerCertificate: Uint8Array): boolean {
  if (!request.hash) return false;
  const cert = pkijs.Certificate.fromBER(issuerCertificate);
  const algorithm = NODE_HASHES[request.hash];
  const nameHash = createHash(algorithm).update(new Uint8Array(cert.subject.toSchema().toBER())).digest();
  const keyHash = createHash(algorithm)
    .update(cert.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView)
    .digest();
  return nameHash.equals(request.issuerNameHash) && keyHash.equals(request.issuerKeyHash);
}

/** A successful OCSPResponse carrying a BasicOCSPResponse signed by `signer` over the ResponseData DER. */
export async function buildOcspResponse(p: OcspResponseParams): Promise<Uint8Array> {
  const responder = pkijs.Certificate.fromBER(p.responderCertificate);
  const responderSpki = new Uint8Array(responder.subjectPublicKeyInfo.toSchema().toBER());
  const keyHash = createHash('sha1').update(
    responder.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView,
  );

  const data = new pkijs.ResponseData({
    // byKey: SHA-1 of the responder's public key (RFC 6960 4.2.1).
    responderID: new asn1js.OctetString({ valueHex: toArrayBuffer(new Uint8Array(keyHash.digest())) }),
    producedAt: wholeSeconds(p.producedAt),
    responses: p.responses.map(
      (r) =>
        new pkijs.SingleResponse({
          certID: pkijs.CertID.fromBER(r.certId),
          certStatus: certStatus(r.status),
          thisUpdate: wholeSeconds(r.thisUpdate),
          ...(r.nextUpdate ? { nextUpdate: wholeSeconds(r.nextUpdate) } : {}),
        }),
    ),
    ...(p.nonce
      ? {
          responseExtensions: [
            new pkijs.Extension({
              extnID: ID_PKIX_OCSP_NONCE,
              critical: false,
              extnValue: toArrayBuffer(p.nonce),
            }),
          ],
        }
      : {}),
  });
  const tbs = new Uint8Array(data.toSchema(true).toBER());
  const signed = await signTbs(p.signer, tbs, responderSpki);
  data.tbsView = tbs; // toSchema() re-emits exactly the signed bytes

  const basic = new pkijs.BasicOCSPResponse({
    tbsResponseData: data,
    signatureAlgorithm: signed.algorithm,
    signature: signed.value,
    certs: [responder],
  });
  const response = new pkijs.OCSPResponse({
    responseStatus: new asn1js.Enumerated({ value: RESPONSE_STATUS.successful }),
    responseBytes: new pkijs.ResponseBytes({
      responseType: ID_PKIX_OCSP_BASIC,
      response: new asn1js.OctetString({ valueHex: basic.toSchema().toBER() }),
    }),
  });
  return new Uint8Array(response.toSchema().toBER());
}

/** An unsuccessful OCSPResponse: status only, no responseBytes, unsigned (RFC 6960 2.3). */
export function ocspError(status: OcspErrorStatus): Uint8Array {
  const response = new pkijs.OCSPResponse({
    responseStatus: new asn1js.Enumerated({ value: RESPONSE_STATUS[status] }),
  });
  return new Uint8Array(response.toSchema().toBER());
}

/** CertStatus ::= CHOICE { good [0] IMPLICIT NULL, revoked [1] IMPLICIT RevokedInfo, unknown [2] IMPLICIT NULL } */
function certStatus(status: OcspCertStatus): asn1js.BaseBlock {
  if (status === 'good' || status === 'unknown') {
    return new asn1js.Primitive({
      idBlock: { tagClass: 3, tagNumber: status === 'good' ? 0 : 2 },
      valueHex: new ArrayBuffer(0),
    });
  }
  const { at, reason } = status.revoked;
  const value: asn1js.BaseBlock[] = [new asn1js.GeneralizedTime({ valueDate: wholeSeconds(at) })];
  // unspecified is left out, as on the CRL (RFC 5280 5.3.1).
  if (reason !== 'unspecified') {
    value.push(
      new asn1js.Constructed({
        idBlock: { tagClass: 3, tagNumber: 0 },
        value: [new asn1js.Enumerated({ value: REASON_CODES[reason] })],
      }),
    );
  }
  return new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 1 }, value });
}
