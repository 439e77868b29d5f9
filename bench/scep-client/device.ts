/**
 * A simulated device's key material: an RSA key in node:crypto, the self-signed certificate it signs
 * its first PKIOperation with, and the PKCS#10 request it sends. Keys are made before a benchmark
 * starts timing (RSA key generation is not what is measured) and may be shared by many devices; what
 * every request of a key repeats (its certificate, public key, issuer and serial) is parsed once here.
 */
import { constants, generateKeyPair, type KeyObject, privateDecrypt, randomBytes, sign } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { HashName, KeyTransportDecrypter, Signer } from '../../pki/keys.js';
import { DIGEST_BY_OID, DIGEST_OID_BY_NAME } from '../../pki/scep/oids.js';
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

/** `count` RSA-2048 device keys, generated in libuv's thread pool. */
export async function generateDeviceKeys(count: number): Promise<DeviceKey[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => generateDeviceKey(`bench-device-key-${i}`)));
}

export async function generateDeviceKey(label: string): Promise<DeviceKey> {
  const { privateKey, publicKey } = await new Promise<{ privateKey: KeyObject; publicKey: KeyObject }>(
    (resolve, reject) =>
      generateKeyPair('rsa', { modulusLength: 2048 }, (err, pub, priv) =>
        err ? reject(err) : resolve({ privateKey: priv, publicKey: pub }),
      ),
  );
  const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
  const signer = nodeSigner(privateKey);
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
    decrypter: nodeDecrypter(privateKey),
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

function nodeSigner(privateKey: KeyObject): Signer {
  return {
    keyAlgorithm: 'rsa-2048',
    async sign(data: Uint8Array, hash: HashName) {
      return new Uint8Array(sign(DIGEST_BY_OID[DIGEST_OID_BY_NAME[hash]]!.node, data, privateKey));
    },
  };
}

/**
 * SCEP key transport is RSAES-PKCS1-v1_5. Node 20 refuses `privateDecrypt` with PKCS#1 v1.5 padding
 * (Marvin, CVE-2023-46809; the flag that reverts it is not allowed in NODE_OPTIONS) and WebCrypto has
 * no such mechanism, so OpenSSL does the raw RSA operation and only the EME-PKCS1-v1_5 decoding
 * (RFC 8017 7.2.2 step 3) is done here. Acceptable for a simulated device's throwaway key: the
 * product's own RA key decrypts in the HSM.
 */
function nodeDecrypter(privateKey: KeyObject): KeyTransportDecrypter {
  return {
    async decrypt(encryptedKey: Uint8Array) {
      const em = privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, encryptedKey);
      // EM = 0x00 || 0x02 || PS (at least 8 non-zero octets) || 0x00 || M
      const separator = em.indexOf(0, 2);
      if (em[0] !== 0 || em[1] !== 2 || separator < 10) throw new Error('decryption error');
      return new Uint8Array(em.subarray(separator + 1));
    },
  };
}
