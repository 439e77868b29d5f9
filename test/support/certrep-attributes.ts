import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { certsFromPkcs7, openssl } from './openssl.js';
import { buildPkiMessage, type OpensslDevice } from './openssl-scep.js';

/** The SCEP signed attributes of a CertRep, as `openssl cms -cmsout -print` shows them. */
export interface CertRepAttributes {
  messageType?: string;
  /** 0 SUCCESS, 2 FAILURE, 3 PENDING. */
  pkiStatus?: string;
  /** 0 badAlg, 1 badMessageCheck, 2 badRequest, 3 badTime, 4 badCertId. */
  failInfo?: string;
  transactionId?: string;
  senderNonceHex?: string;
  recipientNonceHex?: string;
}

const SCEP = '2.16.840.1.113733.1.9';

/**
 * Reads a CertRep's signed attributes with OpenSSL only (not the product's decoder), and checks its
 * signature with `openssl cms -verify -noverify` (signature only; the chain is the test's business).
 */
export async function certRepAttributes(body: Uint8Array, dir: string): Promise<CertRepAttributes> {
  const file = join(dir, `certrep-${Date.now()}-${Math.random().toString(36).slice(2)}.der`);
  writeFileSync(file, body);
  const verified = await openssl([
    'cms',
    '-verify',
    '-noverify',
    '-inform',
    'DER',
    '-in',
    file,
    '-out',
    '/dev/null',
  ]);
  if (verified.code !== 0) throw new Error(`CertRep signature rejected by openssl: ${verified.output}`);
  const printed = await openssl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', file]);
  if (printed.code !== 0) throw new Error(`openssl cms -cmsout -print failed: ${printed.output}`);
  const signed = printed.output.slice(
    printed.output.indexOf('signedAttrs:'),
    printed.output.indexOf('signatureAlgorithm:', printed.output.indexOf('signedAttrs:')),
  );
  const attrs = new Map<string, string>();
  for (const block of signed.split(/object: /).slice(1)) {
    const oid = /\(([\d.]+)\)/.exec(block)?.[1];
    if (!oid) continue;
    const printable = /PRINTABLESTRING:(\S*)/.exec(block)?.[1];
    const hex = [...block.matchAll(/^\s*[0-9a-f]{4} - ((?:[0-9a-f]{2}[ -]){0,15}[0-9a-f]{2})/gm)]
      .map((m) => m[1]!.replace(/[ -]/g, ''))
      .join('');
    attrs.set(oid, printable ?? hex);
  }
  return {
    messageType: attrs.get(`${SCEP}.2`),
    pkiStatus: attrs.get(`${SCEP}.3`),
    failInfo: attrs.get(`${SCEP}.4`),
    senderNonceHex: attrs.get(`${SCEP}.5`),
    recipientNonceHex: attrs.get(`${SCEP}.6`),
    transactionId: attrs.get(`${SCEP}.7`),
  };
}

/** POSTs a PKIOperation and reads the answer: HTTP status, and the CertRep's attributes when 200. */
export async function postPkiOperation(
  url: string,
  body: Uint8Array,
  dir: string,
): Promise<{ status: number; text?: string; body?: Uint8Array; attributes?: CertRepAttributes }> {
  const response = await fetch(`${url}?operation=PKIOperation`, { method: 'POST', body });
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (response.status !== 200) return { status: response.status, text: Buffer.from(bytes).toString('utf8') };
  return { status: 200, body: bytes, attributes: await certRepAttributes(bytes, dir) };
}

/**
 * A PKCSReq built by openssl (test/support/openssl-scep.ts) for the profile's RA, as fetched from
 * its GetCACert, posted to its SCEP URL: the answer comes at once (PENDING while the workflow waits).
 */
export async function postOpensslPkcsReq(opts: {
  scepUrl: string;
  device: OpensslDevice;
  transactionId: string;
  dir: string;
}): Promise<Awaited<ReturnType<typeof postPkiOperation>>> {
  const ca = await fetch(`${opts.scepUrl}?operation=GetCACert`);
  const [ra] = await certsFromPkcs7(new Uint8Array(await ca.arrayBuffer()), opts.dir);
  const raFile = join(opts.dir, `ra-${opts.transactionId}.pem`);
  writeFileSync(raFile, ra!);
  const message = await buildPkiMessage({
    dir: opts.dir,
    recipients: [raFile],
    signer: opts.device,
    cipher: 'aes256',
    digest: 'sha256',
    messageType: 19,
    transactionId: opts.transactionId,
    content: opts.device.csrDer,
  });
  return postPkiOperation(opts.scepUrl, message.der, opts.dir);
}
