/** Object identifiers used by the SCEP codec (RFC 8894, RFC 5652, RFC 8017, NIST). */

import type { ContentCipher } from './types.js';

/** SCEP attributes live under the VeriSign arc 2.16.840.1.113733.1.9 (RFC 8894 section 3.2.1). */
export const SCEP_ATTR = {
  messageType: '2.16.840.1.113733.1.9.2',
  pkiStatus: '2.16.840.1.113733.1.9.3',
  failInfo: '2.16.840.1.113733.1.9.4',
  senderNonce: '2.16.840.1.113733.1.9.5',
  recipientNonce: '2.16.840.1.113733.1.9.6',
  transactionID: '2.16.840.1.113733.1.9.7',
} as const;

/** CMS content types and signed attributes (RFC 5652). */
export const CMS = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  envelopedData: '1.2.840.113549.1.7.3',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
} as const;

/** RSA algorithm identifiers (RFC 8017). certmonger puts plain rsaEncryption in signatureAlgorithm. */
export const RSA = {
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha1WithRSAEncryption: '1.2.840.113549.1.1.5',
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  sha384WithRSAEncryption: '1.2.840.113549.1.1.12',
  sha512WithRSAEncryption: '1.2.840.113549.1.1.13',
} as const;

/** EC signature identifiers (RFC 5758), for RA keys on P-256/P-384. */
export const ECDSA = {
  withSHA256: '1.2.840.10045.4.3.2',
  withSHA384: '1.2.840.10045.4.3.3',
  withSHA512: '1.2.840.10045.4.3.4',
} as const;

/** Digest algorithms. */
export const DIGEST = {
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
} as const;

/** Content-encryption algorithms SCEP clients use for the pkcsPKIEnvelope. */
export const CIPHER = {
  desCbc: '1.3.14.3.2.7',
  desEde3Cbc: '1.2.840.113549.3.7',
  aes128Cbc: '2.16.840.1.101.3.4.1.2',
  aes192Cbc: '2.16.840.1.101.3.4.1.22',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
} as const;

type DigestName = 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512';

/** Digest OID to the names used in types.ts and by node:crypto. */
export const DIGEST_BY_OID: Readonly<Record<string, { name: DigestName; node: string }>> = {
  [DIGEST.sha1]: { name: 'SHA-1', node: 'sha1' },
  [DIGEST.sha256]: { name: 'SHA-256', node: 'sha256' },
  [DIGEST.sha384]: { name: 'SHA-384', node: 'sha384' },
  [DIGEST.sha512]: { name: 'SHA-512', node: 'sha512' },
};

export const DIGEST_OID_BY_NAME: Readonly<Record<DigestName, string>> = {
  'SHA-1': DIGEST.sha1,
  'SHA-256': DIGEST.sha256,
  'SHA-384': DIGEST.sha384,
  'SHA-512': DIGEST.sha512,
};

/** Content ciphers: OID, key length and IV length. The ContentCipher names are also node:crypto's. */
export const CIPHER_SPECS: Readonly<
  Record<ContentCipher, { oid: string; keyLength: number; ivLength: number }>
> = {
  'des-cbc': { oid: CIPHER.desCbc, keyLength: 8, ivLength: 8 },
  'des-ede3-cbc': { oid: CIPHER.desEde3Cbc, keyLength: 24, ivLength: 8 },
  'aes-128-cbc': { oid: CIPHER.aes128Cbc, keyLength: 16, ivLength: 16 },
  'aes-192-cbc': { oid: CIPHER.aes192Cbc, keyLength: 24, ivLength: 16 },
  'aes-256-cbc': { oid: CIPHER.aes256Cbc, keyLength: 32, ivLength: 16 },
};

export function cipherByOid(oid: string): ContentCipher | undefined {
  return (Object.keys(CIPHER_SPECS) as ContentCipher[]).find((name) => CIPHER_SPECS[name].oid === oid);
}
