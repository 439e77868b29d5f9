/**
 * Signing a to-be-signed structure (TBSCertList, ResponseData) with a Signer, the way
 * buildCertificate does for certificates: the DER handed to the signer is exactly what is emitted.
 */
import { createPublicKey, verify } from 'node:crypto';
import * as asn1js from 'asn1js';
import type * as pkijs from 'pkijs';
import type { HashName, Signer } from '../keys.js';
import { signatureAlgorithm } from './certificate.js';
import { toArrayBuffer } from './name.js';

const NODE_HASHES: Record<HashName, string> = {
  'SHA-1': 'sha1',
  'SHA-256': 'sha256',
  'SHA-384': 'sha384',
  'SHA-512': 'sha512',
};

/** The digest a CA key signs with: SHA-384 for P-384, SHA-256 otherwise (as provisioning does). */
export function hashForSigner(signer: Signer): HashName {
  return signer.keyAlgorithm === 'ec-p384' ? 'SHA-384' : 'SHA-256';
}

export interface TbsSignature {
  algorithm: pkijs.AlgorithmIdentifier;
  value: asn1js.BitString;
}

/**
 * Signs `tbs` and checks the signature against the issuer's public key: a signer whose key does
 * not match the issuer certificate would produce an object nobody can verify, so it is refused.
 */
export async function signTbs(
  signer: Signer,
  tbs: Uint8Array,
  issuerSpki: Uint8Array,
  hash: HashName = hashForSigner(signer),
): Promise<TbsSignature> {
  const signature = await signer.sign(tbs, hash);
  if (!signatureVerifies(hash, tbs, issuerSpki, signature)) {
    throw new Error('the signer produced a signature that the issuer public key does not verify');
  }
  return {
    algorithm: signatureAlgorithm(signer.keyAlgorithm, hash),
    value: new asn1js.BitString({ valueHex: toArrayBuffer(signature) }),
  };
}

function signatureVerifies(hash: HashName, data: Uint8Array, spkiDer: Uint8Array, signature: Uint8Array) {
  try {
    const key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
    return verify(NODE_HASHES[hash], data, key, signature);
  } catch {
    return false;
  }
}

/** Whole seconds: RFC 5280 and RFC 6960 times carry no fractions. */
export function wholeSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}
