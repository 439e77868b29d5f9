import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { certsFromPkcs7, openssl } from './openssl.js';

/**
 * Opens a CertRep the way a device does, with OpenSSL only: check the RA's signature, then decrypt
 * the envelope with the device's key. Returns the certificates it carried.
 */
export async function openCertRep(
  body: Uint8Array,
  device: { keyPem: string; certificatePem: string },
  dir: string,
): Promise<string[]> {
  const tag = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const files = {
    rep: join(dir, `rep-${tag}.der`),
    envelope: join(dir, `env-${tag}.der`),
    inner: join(dir, `inner-${tag}.der`),
    key: join(dir, `key-${tag}.pem`),
    cert: join(dir, `signer-${tag}.pem`),
  };
  writeFileSync(files.rep, body);
  writeFileSync(files.key, device.keyPem);
  writeFileSync(files.cert, device.certificatePem);
  const verified = await openssl([
    'cms',
    '-verify',
    '-noverify',
    '-inform',
    'DER',
    '-in',
    files.rep,
    '-out',
    files.envelope,
  ]);
  if (verified.code !== 0) throw new Error(`CertRep signature rejected by openssl: ${verified.output}`);
  const decrypted = await openssl([
    'cms',
    '-decrypt',
    '-provider',
    'legacy',
    '-provider',
    'default',
    '-inform',
    'DER',
    '-in',
    files.envelope,
    '-inkey',
    files.key,
    '-recip',
    files.cert,
    '-out',
    files.inner,
  ]);
  if (decrypted.code !== 0) throw new Error(`CertRep envelope not decryptable: ${decrypted.output}`);
  const { readFileSync } = await import('node:fs');
  return certsFromPkcs7(readFileSync(files.inner), dir);
}
