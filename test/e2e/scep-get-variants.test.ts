/**
 * PKIOperation over GET as real clients and proxies mangle it, against the real product:
 * - a GET certmonger really sent (captured through the recording proxy) replayed as it was, then with
 *   its `message=` re-encoded as standard base64 (percent-escaped), URL-safe base64, and standard
 *   base64 whose '+' went unescaped (the server's query parser turns it into a space);
 * - `GetCACert&message=<anything>` (a CA identifier some clients send);
 * - PKCSReq built by openssl (test/support/openssl-scep.ts) in each content cipher, over GET and POST:
 *   the CertRep comes back encrypted with the request's cipher and opens with `openssl cms -decrypt`.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certmongerEnroll } from '../support/certmonger.js';
import { openCertRep } from '../support/certrep.js';
import { certsFromPkcs7, serialOf } from '../support/openssl.js';
import {
  buildPkiMessage,
  CIPHER_NAME,
  makeDevice,
  OPENSSL_CIPHERS,
  type OpensslDigest,
  openssl,
} from '../support/openssl-scep.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { type RecordedExchange, startRecordingProxy } from '../support/recording-proxy.js';

let pipeline: Pipeline;
let work: string;
const challenge = 'test-challenge';

beforeAll(async () => {
  pipeline = await startPipeline();
  work = mkdtempSync(join(tmpdir(), 'e2e-get-variants-'));
});
afterAll(async () => {
  await pipeline?.stop();
});

const pem = (der: Uint8Array, label = 'CERTIFICATE') =>
  `-----BEGIN ${label}-----\n${Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})(?!$)/g, '$1\n')}\n-----END ${label}-----\n`;

describe('a real certmonger GET PKIOperation, replayed with its message re-encoded', () => {
  let captured: RecordedExchange;
  let der: Buffer;
  let enrolled: Awaited<ReturnType<typeof certmongerEnroll>>;

  beforeAll(async () => {
    const proxy = await startRecordingProxy(pipeline.url);
    try {
      enrolled = await certmongerEnroll({ url: `${proxy.url}/scep`, cn: 'server-get-variants', challenge });
    } finally {
      await proxy.close();
    }
    expect(enrolled.state, enrolled.log).toBe('MONITORING');
    const operations = proxy.exchanges.filter((e) => e.path.includes('operation=PKIOperation'));
    expect(operations.length).toBeGreaterThanOrEqual(1);
    captured = operations[0]!;
    expect(captured.method).toBe('GET');
    const message = new URL(captured.path, 'http://x').searchParams.get('message');
    expect(message).toMatch(/^[A-Za-z0-9+/= _-]{100,}$/);
    der = Buffer.from(message!, 'base64');
    expect(der[0]).toBe(0x30); // a DER SEQUENCE: the pkiMessage itself
  }, 120_000);

  /** Sends one GET and opens the CertRep as certmonger would; returns the certificate's serial. */
  async function replay(query: string): Promise<string> {
    const response = await fetch(`${pipeline.url}/scep?operation=PKIOperation&message=${query}`);
    const body = new Uint8Array(await response.arrayBuffer());
    expect(response.status, Buffer.from(body).toString()).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-pki-message');
    const [signer] = await certsFromPkcs7(der, work);
    const certs = await openCertRep(
      body,
      { keyPem: readFileSync(join(enrolled.dir, 'key.pem'), 'utf8'), certificatePem: signer! },
      work,
    );
    return serialOf(certs[0]!, work);
  }

  it('the captured bytes as sent, then standard, URL-safe and unescaped-+ base64: the same certificate', async () => {
    const b64 = der.toString('base64');
    // The re-encodings only mean something if the message has the characters that differ.
    expect(b64).toMatch(/[+/]/);
    const issuedSerial = await serialOf(enrolled.certificatePem!, work);

    const variants: Record<string, string> = {
      'as captured': new URL(captured.path, 'http://x').search.match(/[?&]message=([^&]*)/)![1]!,
      'standard, percent-escaped': encodeURIComponent(b64),
      'URL-safe alphabet': der.toString('base64url'),
      'URL-safe alphabet with padding': encodeURIComponent(b64.replace(/\+/g, '-').replace(/\//g, '_')),
      "'+' unescaped (arrives as space)": b64.replace(/\//g, '%2F').replace(/=/g, '%3D'),
    };
    expect(variants["'+' unescaped (arrives as space)"]).toContain('+');
    for (const [name, query] of Object.entries(variants)) {
      expect(await replay(query), name).toBe(issuedSerial);
    }
  });
});

describe('GetCACert with a message parameter', () => {
  it.each(['anything', 'MyCA', 'CN%3DSome%20CA', ''])(
    'message=%s: the CA/RA chain, not an error',
    async (m) => {
      const plain = await fetch(`${pipeline.url}/scep?operation=GetCACert`);
      const withMessage = await fetch(
        `${pipeline.url}/cgi-bin/pkiclient.exe?operation=GetCACert&message=${m}`,
      );
      expect(withMessage.status).toBe(200);
      expect(withMessage.headers.get('content-type')).toBe('application/x-x509-ca-ra-cert');
      const certs = await certsFromPkcs7(new Uint8Array(await withMessage.arrayBuffer()), work);
      expect(certs).toEqual(await certsFromPkcs7(new Uint8Array(await plain.arrayBuffer()), work));
      expect(certs).toHaveLength(3);
    },
  );
});

describe('openssl-built PKCSReq in every cipher: the CertRep answers in the same cipher', () => {
  const cases = OPENSSL_CIPHERS.map((cipher, i) => ({
    cipher,
    digest: (['sha1', 'sha256', 'sha512'] as OpensslDigest[])[i % 3]!,
    // Alternate the transports: GET URL-safe, POST.
    method: i % 2 === 0 ? 'GET' : 'POST',
  }));

  it.each(cases)('$cipher / $digest over $method', async ({ cipher, digest, method }) => {
    const ra = pipeline.ras.get('devices')!;
    const raPem = join(work, 'ra.pem');
    writeFileSync(raPem, pem(ra.raCertificate));
    const cn = `get-variants-${cipher}`;
    const device = await makeDevice(work, cn, challenge);
    const built = await buildPkiMessage({
      dir: work,
      recipients: [raPem],
      signer: device,
      cipher,
      digest,
      messageType: 19,
      transactionId: `tx-${cipher}-${Date.now()}`,
      content: device.csrDer,
    });
    const response =
      method === 'GET'
        ? await fetch(
            `${pipeline.url}/scep?operation=PKIOperation&message=${Buffer.from(built.der).toString('base64url')}`,
          )
        : await fetch(`${pipeline.url}/scep?operation=PKIOperation`, { method: 'POST', body: built.der });
    const body = new Uint8Array(await response.arrayBuffer());
    expect(response.status, Buffer.from(body).toString()).toBe(200);

    // The envelope inside the CertRep: which cipher, and does the device open it.
    const envelope = await openssl(['cms', '-verify', '-noverify', '-inform', 'DER', '-binary'], body);
    const printed = (await openssl(['cms', '-cmsout', '-print', '-inform', 'DER'], envelope)).toString();
    expect(printed.toLowerCase()).toContain(`algorithm: ${CIPHER_NAME[cipher]}`);
    const certs = await openCertRep(
      body,
      { keyPem: readFileSync(device.keyFile, 'utf8'), certificatePem: readFileSync(device.certFile, 'utf8') },
      work,
    );
    const text = (await openssl(['x509', '-noout', '-subject'], Buffer.from(certs[0]!))).toString();
    expect(text).toContain(`CN = ${cn}`);
  });
});
