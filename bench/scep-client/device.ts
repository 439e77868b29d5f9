/**
 * A simulated device's key material: an RSA key in a PKCS#11 token (SoftHSM: a well-kept RSAES-PKCS1
 * v1.5 decryption for the CertRep envelope, which node:crypto refuses since the Marvin fix), the
 * self-signed certificate it signs its first PKIOperation with, and the PKCS#10 request it sends.
 * Keys are made before a benchmark starts timing (key generation is not what is measured) and may be
 * shared by many devices; what every request of a key repeats (its certificate, public key, issuer
 * and serial) is parsed once here.
 */
import { createPublicKey, type KeyObject, randomBytes, randomUUID } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { ensureSoftHsmToken } from '../../hsm/softhsm.js';
import { HsmToken } from '../../hsm/token.js';
import type { KeyTransportDecrypter, Signer } from '../../pki/keys.js';
import { buildCertificate, signatureAlgorithm } from '../../pki/x509/certificate.js';
import { encodeName, toArrayBuffer } from '../../pki/x509/name.js';

export interface DeviceKey {
  /** The issued certificate must carry exactly this key. */
  publicKey: KeyObject;
  /** DER SubjectPublicKeyInfo. */
  spki: Uint8Array;
  signer: Signer;
  /** Opens the CertRep envelope (RSAES-PKCS1-v1_5 key transport). */
  decrypter: KeyTransportDecrypter;
  /** Self-signed signer certificate (DER), as a device makes for its first PKCSReq. */
  certificate: Uint8Array;
  /** The same, parsed once: goes into every request's SignedData. */
  certificateBlock: asn1js.AsnType;
  /** The signer id of its requests; CertReps are encrypted to it. */
  issuerAndSerial: pkijs.IssuerAndSerialNumber;
  /** DER of issuerAndSerial, to find our recipient in a CertRep envelope. */
  issuerAndSerialDer: Uint8Array;
  spkiBlock: asn1js.AsnType;
}

const CHALLENGE_PASSWORD = '1.2.840.113549.1.9.7';
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** `count` RSA-2048 device keys, generated inside `token` (a throwaway one: see bench/load.ts). */
/**
 * The devices' side of a load: a SoftHSM token of their own under `dir` (never the product's), opened.
 * Close it when done.
 */
export async function openDeviceKeyToken(dir: string, label: string): Promise<HsmToken> {
  return HsmToken.open(await ensureSoftHsmToken({ dir, label, pin: '1234', soPin: '5678' }));
}

export async function generateDeviceKeys(count: number, token: HsmToken): Promise<DeviceKey[]> {
  const run = randomUUID().slice(0, 8);
  const keys: DeviceKey[] = [];
  // One after the other: SoftHSM's key generation takes a session each, and the pool is small.
  for (let i = 0; i < count; i++) keys.push(await generateDeviceKey(token, `bench-device-${run}-${i}`));
  return keys;
}

export async function generateDeviceKey(token: HsmToken, label: string): Promise<DeviceKey> {
  const { spki } = await token.generateKeyPair(label, 'rsa-2048', 'device');
  const publicKey = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  const signer = await token.signer(label);
  const now = Date.now();
  const serialNumber = randomBytes(8);
  serialNumber[0]! &= 0x7f;
  serialNumber[0]! |= 0x01;
  const certificate = await buildCertificate({
    serialNumber,
    subject: encodeName([['CN', label]]),
    subjectPublicKeyInfo: spki,
    notBefore: new Date(now - 10 * 60_000),
    notAfter: new Date(now + 7 * 86_400_000),
    issuer: { kind: 'self', signer },
    extensions: { keyUsages: ['digitalSignature', 'keyEncipherment'] },
  });
  const parsed = pkijs.Certificate.fromBER(toArrayBuffer(certificate));
  const issuerAndSerial = new pkijs.IssuerAndSerialNumber({
    issuer: parsed.issuer,
    serialNumber: parsed.serialNumber,
  });
  return {
    publicKey,
    spki,
    signer,
    decrypter: await token.decrypter(label),
    certificate,
    certificateBlock: asn1js.fromBER(toArrayBuffer(certificate)).result,
    issuerAndSerial,
    issuerAndSerialDer: new Uint8Array(issuerAndSerial.toSchema().toBER()),
    spkiBlock: asn1js.fromBER(toArrayBuffer(spki)).result,
  };
}

/** PKCS#10 (DER) for `CN=<commonName>` with the challengePassword attribute, signed SHA-256 by the key. */
export async function buildCsr(
  key: DeviceKey,
  opts: { commonName: string; challengePassword: string },
): Promise<Uint8Array> {
  const password = opts.challengePassword;
  const challenge = new pkijs.Attribute({
    type: CHALLENGE_PASSWORD,
    values: [
      PRINTABLE.test(password)
        ? new asn1js.PrintableString({ value: password })
        : new asn1js.Utf8String({ value: password }),
    ],
  });
  // CertificationRequestInfo (RFC 2986 4.1).
  const info = new asn1js.Sequence({
    value: [
      new asn1js.Integer({ value: 0 }),
      asn1js.fromBER(toArrayBuffer(encodeName([['CN', opts.commonName]]))).result,
      key.spkiBlock,
      new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: [challenge.toSchema()] }),
    ],
  });
  const tbs = new Uint8Array(info.toBER());
  const signature = await key.signer.sign(tbs, 'SHA-256');
  const request = new asn1js.Sequence({
    value: [
      info,
      signatureAlgorithm(key.signer.keyAlgorithm, 'SHA-256').toSchema(),
      new asn1js.BitString({ valueHex: toArrayBuffer(signature) }),
    ],
  });
  return new Uint8Array(request.toBER());
}
