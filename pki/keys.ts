/**
 * What a private key can do for PKI code, without the code knowing where the key lives.
 * The HSM implements these (hsm/); tests of pure code may implement them with software keys.
 */

/** Key types the product generates and accepts for CA and RA keys. */
export type KeyAlgorithm = 'rsa-2048' | 'rsa-3072' | 'rsa-4096' | 'ec-p256' | 'ec-p384';

export type HashName = 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512';

export interface Signer {
  readonly keyAlgorithm: KeyAlgorithm;
  /**
   * Signs `data` (hashing it with `hash` first). Returns the signature exactly as it goes into an
   * X.509 or CMS signature field: PKCS#1 v1.5 bytes for RSA, a DER ECDSA-Sig-Value for EC.
   */
  sign(data: Uint8Array, hash: HashName): Promise<Uint8Array>;
}

/** RSAES-PKCS1-v1_5 key transport (CMS KeyTransRecipientInfo with rsaEncryption), done in the HSM. */
export interface KeyTransportDecrypter {
  decrypt(encryptedKey: Uint8Array): Promise<Uint8Array>;
}
