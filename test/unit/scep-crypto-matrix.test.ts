/**
 * Every content cipher x digest a SCEP client may use, built by an implementation independent of the
 * product (openssl cms -encrypt, asn1parse -genconf, dgst -sign: test/support/openssl-scep.ts) and
 * decoded by decodePkiMessage with the fixture RA key in SoftHSM. Then the other direction: a CertRep
 * encoded with each cipher decrypts with `openssl cms -decrypt` as the device would.
 *
 * Run with NODE_OPTIONS=--openssl-legacy-provider (npm test sets it): single DES.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePkiMessage } from '../../pki/scep/decode.js';
import { encodeCertRep } from '../../pki/scep/encode.js';
import type { ContentCipher } from '../../pki/scep/types.js';
import {
  type FixtureRaToken,
  openFixtureRaToken,
  scepFixture,
  scepFixturePath,
} from '../support/fixture-ra-token.js';
import {
  buildPkiMessage,
  CIPHER_NAME,
  DIGEST_NAME,
  makeDevice,
  OPENSSL_CIPHERS,
  OPENSSL_DIGESTS,
  type OpensslDevice,
  openssl,
  providersFor,
} from '../support/openssl-scep.js';

const RA_DER = scepFixture('ra.der');
const CA_DER = scepFixture('ca.der');

let ra: FixtureRaToken;
let device: OpensslDevice;

beforeAll(async () => {
  ra = await openFixtureRaToken('scep-matrix');
  device = await makeDevice(ra.dir, 'matrix-device', 'matrix-secret');
});
afterAll(async () => {
  await ra?.close();
});

const combos = OPENSSL_CIPHERS.flatMap((cipher) =>
  OPENSSL_DIGESTS.map((digest) => [cipher, digest] as const),
);

describe('PKCSReq built by openssl, decoded by the product', () => {
  it.each(combos)('%s x %s', async (cipher, digest) => {
    const transactionId = `matrix-${cipher}-${digest}`;
    const built = await buildPkiMessage({
      dir: ra.dir,
      recipients: [scepFixturePath('ra.pem')],
      signer: device,
      cipher,
      digest,
      messageType: 19,
      transactionId,
      content: device.csrDer,
      // Half the cases the way certmonger labels its signature, half as micromdm does.
      signatureAlgorithm: digest === 'sha256' ? 'rsaEncryption' : 'withDigest',
    });
    // The builder itself is judged by openssl: the SignedData verifies and carries the envelope.
    const verified = await openssl(['cms', '-verify', '-noverify', '-inform', 'DER', '-binary'], built.der);
    expect(Buffer.from(verified)).toEqual(Buffer.from(built.envelope));

    const result = await decodePkiMessage(built.der, { certificates: [RA_DER], decrypter: ra.decrypter });
    if (!result.ok) throw new Error(`decode failed: ${JSON.stringify(result.error)}`);
    const req = result.request;
    expect(req.messageType).toBe('PKCSReq');
    expect(req.transactionId).toBe(transactionId);
    expect(Buffer.from(req.senderNonce)).toEqual(Buffer.from(built.senderNonce));
    expect(req.digest).toBe(DIGEST_NAME[digest]);
    expect(req.contentCipher).toBe(CIPHER_NAME[cipher]);
    expect(Buffer.from(req.signerCertificate)).toEqual(Buffer.from(device.certDer));
    if (req.messageType !== 'PKCSReq') throw new Error('unreachable');
    expect(Buffer.from(req.csr)).toEqual(Buffer.from(device.csrDer));
  });

  it('two recipients (RA and CA, as scepclient sends): picks the RA one', async () => {
    const built = await buildPkiMessage({
      dir: ra.dir,
      recipients: [scepFixturePath('ca.pem'), scepFixturePath('ra.pem')],
      signer: device,
      cipher: 'des',
      digest: 'sha1',
      messageType: 19,
      transactionId: 'bWF0cml4LXR3by1yZWNpcGllbnRz',
      content: device.csrDer,
      signingTime: false,
    });
    const result = await decodePkiMessage(built.der, {
      certificates: [RA_DER, CA_DER],
      decrypter: ra.decrypter,
    });
    expect(result.ok && result.request.contentCipher).toBe('des-cbc');
  });

  it('a tampered attribute after signing: certrep-failure badMessageCheck', async () => {
    const built = await buildPkiMessage({
      dir: ra.dir,
      recipients: [scepFixturePath('ra.pem')],
      signer: device,
      cipher: 'aes128',
      digest: 'sha256',
      messageType: 19,
      transactionId: 'tamper-1',
      content: device.csrDer,
    });
    const body = Buffer.from(built.der);
    const at = body.indexOf(Buffer.from('tamper-1'));
    body[at + 7] = '2'.charCodeAt(0);
    const result = await decodePkiMessage(body, { certificates: [RA_DER], decrypter: ra.decrypter });
    expect(!result.ok && result.error.reply === 'certrep-failure' && result.error.failInfo).toBe(
      'badMessageCheck',
    );
  });
});

describe('CertRep SUCCESS in each cipher decrypts with openssl cms -decrypt', () => {
  it.each(OPENSSL_CIPHERS.map((c) => [CIPHER_NAME[c] as ContentCipher]))('%s', async (contentCipher) => {
    const issued = new Uint8Array(
      await openssl(['x509', '-in', scepFixturePath('scepclient-signer.pem'), '-outform', 'DER']),
    );
    const rep = await encodeCertRep(
      {
        status: 'SUCCESS',
        transactionId: `rep-${contentCipher}`,
        recipientNonce: new Uint8Array(16).fill(1),
        digest: 'SHA-256',
        content: { kind: 'certificates', certificates: [issued] },
        recipientCertificate: device.certDer,
        contentCipher,
      },
      { certificate: RA_DER, signer: ra.signer },
    );
    const repFile = join(ra.dir, `rep-${contentCipher}.der`);
    const envelopeFile = join(ra.dir, `rep-${contentCipher}.env`);
    writeFileSync(repFile, rep);
    await openssl([
      'cms',
      '-verify',
      '-noverify',
      '-inform',
      'DER',
      '-in',
      repFile,
      '-certfile',
      scepFixturePath('ra.pem'),
      '-binary',
      '-out',
      envelopeFile,
    ]);
    const envelope = readFileSync(envelopeFile);
    const printed = (await openssl(['cms', '-cmsout', '-print', '-inform', 'DER'], envelope)).toString();
    expect(printed.toLowerCase()).toContain(`algorithm: ${contentCipher}`);
    const certsOnly = await openssl(
      [
        'cms',
        '-decrypt',
        ...providersFor(contentCipher),
        '-inform',
        'DER',
        '-recip',
        device.certFile,
        '-inkey',
        device.keyFile,
        '-binary',
      ],
      envelope,
    );
    const pem = (await openssl(['pkcs7', '-inform', 'DER', '-print_certs'], certsOnly)).toString();
    const der = await openssl(['x509', '-outform', 'DER'], Buffer.from(pem));
    expect(Buffer.from(der)).toEqual(Buffer.from(issued));
  });
});
