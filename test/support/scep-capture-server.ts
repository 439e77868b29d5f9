/**
 * Tiny SCEP server used only to capture what real clients send (scripts/capture-scep-fixtures.sh).
 * It answers GetCACaps and GetCACert, saves every PKIOperation body verbatim, and then either answers
 * HTTP 500 (so the client stops) or, with --pending, a signed PENDING CertRep so the client polls and
 * the poll message can be captured too.
 *
 * Usage: tsx test/support/scep-capture-server.ts --out DIR --prefix NAME --ca-ra-p7 FILE
 *          [--pending --ra-cert FILE --ra-key FILE]
 * Prints "PORT <n>" on stdout once listening.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, sign } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { HashName, KeyTransportDecrypter, Signer } from '../../pki/keys.js';
import { capabilitiesText } from '../../pki/scep/capabilities.js';
import { decodeGetMessageParam, decodePkiMessage } from '../../pki/scep/decode.js';
import { encodeCertRep } from '../../pki/scep/encode.js';

const { values: args } = parseArgs({
  options: {
    out: { type: 'string' },
    prefix: { type: 'string' },
    'ca-ra-p7': { type: 'string' },
    pending: { type: 'boolean', default: false },
    'ra-cert': { type: 'string' },
    'ra-key': { type: 'string' },
  },
});
if (!args.out || !args.prefix || !args['ca-ra-p7'])
  throw new Error('--out, --prefix and --ca-ra-p7 are required');
const outDir = args.out;
const prefix = args.prefix;
const caRaP7 = readFileSync(args['ca-ra-p7']);
mkdirSync(outDir, { recursive: true });

// Software RA for the --pending mode only: the capture tool must not depend on an HSM. Node refuses
// PKCS#1 v1.5 privateDecrypt (Marvin), so key transport goes through the openssl command line.
const raKeyPath = args['ra-key'];
const raCert = args['ra-cert'] ? pemToDer(readFileSync(args['ra-cert'], 'utf8')) : undefined;
const raSigner: Signer | undefined = raKeyPath
  ? {
      keyAlgorithm: 'rsa-2048',
      async sign(data: Uint8Array, hash: HashName) {
        return sign(hash.replace('-', '').toLowerCase(), data, createPrivateKey(readFileSync(raKeyPath)));
      },
    }
  : undefined;
const raDecrypter: KeyTransportDecrypter | undefined = raKeyPath
  ? {
      async decrypt(encryptedKey: Uint8Array) {
        return execFileSync(
          'openssl',
          ['pkeyutl', '-decrypt', '-inkey', raKeyPath, '-pkeyopt', 'rsa_padding_mode:pkcs1'],
          {
            input: encryptedKey,
          },
        );
      },
    }
  : undefined;

function pemToDer(pem: string): Uint8Array {
  const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return Buffer.from(b64, 'base64');
}

let counter = 0;

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function pkiOperation(body: Uint8Array, method: string, res: ServerResponse): Promise<void> {
  counter += 1;
  const file = join(outDir, `${prefix}-${counter}-${method.toLowerCase()}.der`);
  writeFileSync(file, body);
  process.stderr.write(`capture: saved ${file} (${body.length} bytes)\n`);

  if (!args.pending || !raCert || !raSigner || !raDecrypter) {
    res.writeHead(500, { 'content-type': 'text/plain' }).end('captured\n');
    return;
  }
  const decoded = await decodePkiMessage(body, { certificates: [raCert], decrypter: raDecrypter });
  if (!decoded.ok) {
    process.stderr.write(`capture: decode failed: ${decoded.error.message}\n`);
    res.writeHead(500).end('decode failed\n');
    return;
  }
  const r = decoded.request;
  writeFileSync(join(outDir, `${prefix}-${counter}-${r.messageType}.txt`), `${r.transactionId}\n`);
  // First request: PENDING, so the client polls. Anything after: FAILURE, so it stops.
  const rep = await encodeCertRep(
    counter === 1
      ? { status: 'PENDING', transactionId: r.transactionId, recipientNonce: r.senderNonce, digest: r.digest }
      : {
          status: 'FAILURE',
          failInfo: 'badRequest',
          transactionId: r.transactionId,
          recipientNonce: r.senderNonce,
          digest: r.digest,
        },
    { certificate: raCert, signer: raSigner },
  );
  res.writeHead(200, { 'content-type': 'application/x-pki-message' }).end(Buffer.from(rep));
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const operation = url.searchParams.get('operation');
  process.stderr.write(`capture: ${req.method} ${url.pathname} operation=${operation}\n`);
  (async () => {
    if (operation === 'GetCACaps') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(capabilitiesText());
    } else if (operation === 'GetCACert') {
      res.writeHead(200, { 'content-type': 'application/x-x509-ca-ra-cert' }).end(caRaP7);
    } else if (operation === 'PKIOperation' && req.method === 'POST') {
      await pkiOperation(await readBody(req), 'POST', res);
    } else if (operation === 'PKIOperation' && req.method === 'GET') {
      const body = decodeGetMessageParam(url.searchParams.get('message') ?? '');
      if (!body) res.writeHead(400).end('bad message\n');
      else await pkiOperation(body, 'GET', res);
    } else {
      res.writeHead(404).end('unknown operation\n');
    }
  })().catch((err: unknown) => {
    process.stderr.write(`capture: error ${String(err)}\n`);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  });
});

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address && typeof address === 'object') process.stdout.write(`PORT ${address.port}\n`);
});
