import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { profileSchema } from '../../config/profile-types.js';
import { certmongerEnroll } from '../support/certmonger.js';
import { certsFromPkcs7, openssl } from '../support/openssl.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';

let pipeline: Pipeline;
let work: string;

beforeAll(async () => {
  pipeline = await startPipeline({
    configure: (config) => {
      const base = config.profiles[0]!;
      config.profiles.push(
        profileSchema.parse({
          ...base,
          name: 'ec',
          mdm: { type: 'static-challenge', challenge: 'ec-challenge' },
          // The issuing CA signs with ECDSA P-256 in the HSM; the RA stays RSA (SCEP key transport).
          ca: {
            type: 'local-hsm',
            keyLabel: 'issuing-ca/ec',
            keyAlgorithm: 'ec-p256',
            subject: [['CN', 'EC Issuing CA']],
          },
        }),
      );
    },
  });
  work = mkdtempSync(join(tmpdir(), 'e2e-ec-'));
});
afterAll(async () => {
  await pipeline?.stop();
});

describe('a profile whose issuing CA is EC P-256', () => {
  it('issues to certmonger a certificate signed with ECDSA that OpenSSL verifies against the GetCACert chain', async () => {
    const enrolled = await certmongerEnroll({
      url: `${pipeline.url}/scep/ec`,
      cn: 'ec-server',
      challenge: 'ec-challenge',
    });
    expect(enrolled.state, enrolled.log).toBe('MONITORING');
    const caResponse = await fetch(`${pipeline.url}/scep/ec?operation=GetCACert`);
    const chain = await certsFromPkcs7(new Uint8Array(await caResponse.arrayBuffer()), work);
    writeFileSync(join(work, 'chain.pem'), chain.join('\n'));
    writeFileSync(join(work, 'cert.pem'), enrolled.certificatePem!);
    const verify = await openssl(['verify', '-CAfile', join(work, 'chain.pem'), join(work, 'cert.pem')]);
    expect(verify.output).toContain('cert.pem: OK');
    const text = await openssl(['x509', '-in', join(work, 'cert.pem'), '-noout', '-text']);
    expect(text.output).toContain('Signature Algorithm: ecdsa-with-SHA256');
    // The device key is RSA: keyEncipherment stays; it is dropped only for EC device keys.
    expect(text.output).toMatch(/Digital Signature, Key Encipherment/);
  }, 120_000);
});

describe('the NDES path', () => {
  it('selects the profile named in message= (GetCACert of each profile carries its own issuing CA)', async () => {
    const subjects = async (message: string) => {
      const response = await fetch(
        `${pipeline.url}/cgi-bin/pkiclient.exe?operation=GetCACert&message=${message}`,
      );
      expect(response.status).toBe(200);
      const certs = await certsFromPkcs7(new Uint8Array(await response.arrayBuffer()), work);
      const texts = await Promise.all(
        certs.map(async (pem, i) => {
          writeFileSync(join(work, `ndes-${message}-${i}.pem`), pem);
          return (
            await openssl(['x509', '-in', join(work, `ndes-${message}-${i}.pem`), '-noout', '-subject'])
          ).output;
        }),
      );
      return texts.join('\n');
    };
    expect(await subjects('ec')).toContain('EC Issuing CA');
    expect(await subjects('ec')).not.toContain('Issuing CA (devices)');
    expect(await subjects('devices')).toContain('Issuing CA (devices)');
    // Anything else (a CA identifier some clients send) is the default profile, not an error.
    expect(await subjects('MyCAIdentifier')).toContain('Issuing CA (devices)');
  });
});
