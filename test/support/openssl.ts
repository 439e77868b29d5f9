import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exec } from './scep-clients.js';

/** OpenSSL as the independent judge of what the product issues and signs. */
export async function openssl(
  args: string[],
  opts: { cwd?: string } = {},
): Promise<{ code: number; output: string }> {
  return exec('openssl', args, opts);
}

/** The certificates of a certs-only PKCS#7 (GetCACert answer), as PEM blocks in order. */
export async function certsFromPkcs7(der: Uint8Array, dir: string): Promise<string[]> {
  const file = join(dir, `p7-${Date.now()}-${Math.random().toString(36).slice(2)}.der`);
  writeFileSync(file, der);
  const { code, output } = await openssl(['pkcs7', '-inform', 'DER', '-in', file, '-print_certs']);
  if (code !== 0) throw new Error(`openssl pkcs7 failed: ${output}`);
  return output.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

export async function certificateText(pem: string, dir: string): Promise<string> {
  const file = join(dir, `cert-${Date.now()}-${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(file, pem);
  const { code, output } = await openssl(['x509', '-in', file, '-noout', '-text', '-serial']);
  if (code !== 0) throw new Error(`openssl x509 failed: ${output}`);
  return output;
}

export async function serialOf(pem: string, dir: string): Promise<string> {
  const text = await certificateText(pem, dir);
  const match = /serial=([0-9A-F]+)/i.exec(text);
  if (!match) throw new Error('no serial in openssl output');
  return match[1]!.toLowerCase();
}
