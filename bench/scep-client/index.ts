/**
 * An in-process SCEP client (RFC 8894), for load generation and tests: GetCACert, then PKCSReq over
 * POST (AES-128-CBC envelope to the RA, SHA-256 signature by the device key) and CertPoll while the
 * answer is PENDING. Every SCEP-level answer, and every transport or decoding problem, comes back as
 * a typed result: enroll() never throws.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import type { HashName } from '../../pki/keys.js';
import type { ContentCipher, FailInfo, MessageTypeName } from '../../pki/scep/types.js';
import { unsignedHex } from '../../pki/x509/crl.js';
import { encodeName } from '../../pki/x509/name.js';
import { buildCsr, type DeviceKey } from './device.js';
import { KeepAliveHttp } from './http.js';
import {
  type CertRepReading,
  certsOnlyCertificates,
  decodeCertRep,
  encodeRequest,
  issuerAndSubject,
  prepareRa,
  type RaPeer,
} from './messages.js';

export {
  buildCsr,
  type DeviceKey,
  generateDeviceKey,
  generateDeviceKeys,
  openDeviceKeyToken,
} from './device.js';

export interface ScepClientOptions {
  /** The SCEP endpoint, e.g. http://127.0.0.1:8080/scep. */
  url: string;
  /** Keep-alive connections per host (default 256). */
  maxSockets?: number;
  /** Default aes-128-cbc. */
  contentCipher?: ContentCipher;
  /** Default SHA-256. */
  digest?: HashName;
  /** One HTTP request (default 60 s). */
  requestTimeoutMs?: number;
  /** Between CertPolls while PENDING (default 1 s). */
  pollIntervalMs?: number;
  /** Give up polling after this long from the first request (default 60 s): the result is PENDING. */
  pollTimeoutMs?: number;
}

export interface EnrollRequest {
  key: DeviceKey;
  commonName: string;
  challengePassword: string;
  /** Default: 16 random bytes as hex. */
  transactionId?: string;
}

export type EnrollResult = { transactionId: string; polls: number } & (
  | { status: 'SUCCESS'; certificate: Uint8Array; serialHex: string }
  | { status: 'FAILURE'; failInfo: FailInfo | undefined }
  /** Still PENDING when pollTimeoutMs ran out. */
  | { status: 'PENDING' }
  /** No SCEP answer: transport, HTTP status, a CertRep that does not decode or does not fit the request. */
  | { status: 'ERROR'; stage: MessageTypeName; message: string }
);

export class ScepClient {
  private readonly url: URL;

  private constructor(
    private readonly opts: ScepClientOptions,
    private readonly http: KeepAliveHttp,
    /** What GetCACert returned, prepared for the requests. */
    readonly ra: RaPeer,
  ) {
    this.url = new URL(opts.url);
  }

  /** GetCACert once; throws if the server does not answer it with certificates. */
  static async connect(opts: ScepClientOptions): Promise<ScepClient> {
    const http = new KeepAliveHttp(opts.maxSockets, opts.requestTimeoutMs);
    try {
      return new ScepClient(opts, http, prepareRa(await getCaCert(http, new URL(opts.url))));
    } catch (err) {
      http.close();
      throw err;
    }
  }

  close(): void {
    this.http.close();
  }

  async enroll(request: EnrollRequest): Promise<EnrollResult> {
    const transactionId = request.transactionId ?? randomBytes(16).toString('hex');
    const started = Date.now();
    let polls = 0;
    let stage: MessageTypeName = 'PKCSReq';
    const error = (message: string): EnrollResult => ({
      status: 'ERROR',
      stage,
      message,
      transactionId,
      polls,
    });
    let content: Uint8Array;
    try {
      content = await buildCsr(request.key, {
        commonName: request.commonName,
        challengePassword: request.challengePassword,
      });
    } catch (err) {
      return error(`cannot build the CSR: ${text(err)}`);
    }

    for (;;) {
      const answer = await this.exchange(stage, transactionId, content, request.key);
      if (typeof answer === 'string') return error(answer);
      switch (answer.status) {
        case 'FAILURE':
          return { status: 'FAILURE', failInfo: answer.failInfo, transactionId, polls };
        case 'SUCCESS': {
          const issued = answer.certificates
            .map((der) => ({ der, x509: parsedOrUndefined(der) }))
            .find(({ x509 }) => x509?.publicKey.equals(request.key.publicKey));
          if (!issued) return error('SUCCESS without a certificate for the device key');
          // Written as the product records serials (pki/x509): lower-case hex, no sign byte.
          const hex = issued.x509!.serialNumber;
          const serialHex = unsignedHex(Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex'));
          return { status: 'SUCCESS', certificate: issued.der, serialHex, transactionId, polls };
        }
        case 'PENDING': {
          if (Date.now() - started >= (this.opts.pollTimeoutMs ?? 60_000))
            return { status: 'PENDING', transactionId, polls };
          await new Promise((r) => setTimeout(r, this.opts.pollIntervalMs ?? 1000));
          stage = 'CertPoll';
          content = issuerAndSubject(this.ra, encodeName([['CN', request.commonName]]));
          polls++;
        }
      }
    }
  }

  /** One PKIOperation: encode, POST, read the CertRep and check it answers this request. */
  private async exchange(
    messageType: MessageTypeName,
    transactionId: string,
    content: Uint8Array,
    key: DeviceKey,
  ): Promise<CertRepReading | string> {
    const senderNonce = new Uint8Array(randomBytes(16));
    const url = new URL(this.url);
    url.searchParams.set('operation', 'PKIOperation');
    try {
      const body = await encodeRequest(
        {
          messageType,
          transactionId,
          senderNonce,
          content,
          contentCipher: this.opts.contentCipher ?? 'aes-128-cbc',
          digest: this.opts.digest ?? 'SHA-256',
        },
        this.ra,
        key,
      );
      const answer = await this.http.post(url, body, 'application/x-pki-message');
      if (answer.status !== 200)
        return `HTTP ${answer.status}: ${Buffer.from(answer.body.subarray(0, 200)).toString()}`;
      const rep = await decodeCertRep(answer.body, this.ra, key);
      if (rep.transactionId !== transactionId) return `CertRep for transaction ${rep.transactionId}`;
      if (!rep.recipientNonce || !Buffer.from(rep.recipientNonce).equals(senderNonce))
        return 'CertRep recipientNonce does not echo our senderNonce';
      return rep;
    } catch (err) {
      return text(err);
    }
  }
}

/**
 * GetCACert (RFC 8894 4.2): one DER certificate (application/x-x509-ca-cert, micromdm with a single
 * CA) or a certs-only SignedData whose first certificate is the RA's (application/x-x509-ca-ra-cert).
 */
async function getCaCert(http: KeepAliveHttp, base: URL): Promise<Uint8Array[]> {
  const url = new URL(base);
  url.searchParams.set('operation', 'GetCACert');
  const answer = await http.get(url);
  if (answer.status !== 200) throw new Error(`GetCACert: HTTP ${answer.status}`);
  const certificates = answer.contentType.startsWith('application/x-x509-ca-cert')
    ? [answer.body]
    : certsOnlyCertificates(answer.body);
  if (!certificates?.length)
    throw new Error(`GetCACert: no certificate in the answer (${answer.contentType})`);
  return certificates;
}

function parsedOrUndefined(der: Uint8Array): X509Certificate | undefined {
  try {
    return new X509Certificate(der);
  } catch {
    return undefined;
  }
}

const text = (err: unknown) => (err instanceof Error ? err.message : String(err));
