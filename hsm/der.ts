/**
 * DER glue between PKCS#11 attributes and X.509: SubjectPublicKeyInfo from public key attributes,
 * the ECDSA-Sig-Value X.509/CMS expect instead of PKCS#11's raw r||s, and the certificate fields
 * a CKO_CERTIFICATE object carries besides its value.
 */
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';

const RSA_ENCRYPTION = '1.2.840.113549.1.1.1';
const EC_PUBLIC_KEY = '1.2.840.10045.2.1';

export const CURVES = {
  'ec-p256': { oid: '1.2.840.10045.3.1.7', coordinateBytes: 32 },
  'ec-p384': { oid: '1.3.132.0.34', coordinateBytes: 48 },
} as const;

export type CurveAlgorithm = keyof typeof CURVES;

export function unsignedInteger(bytes: Uint8Array): asn1js.Integer {
  return asn1js.Integer.fromBigInt(
    bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString('hex')}`),
  );
}

export function rsaSpki(modulus: Uint8Array, publicExponent: Uint8Array): Uint8Array {
  const rsaKey = new pkijs.RSAPublicKey({
    modulus: unsignedInteger(modulus),
    publicExponent: unsignedInteger(publicExponent),
  });
  const spki = new pkijs.PublicKeyInfo({
    algorithm: new pkijs.AlgorithmIdentifier({
      algorithmId: RSA_ENCRYPTION,
      algorithmParams: new asn1js.Null(),
    }),
    subjectPublicKey: new asn1js.BitString({ valueHex: rsaKey.toSchema().toBER() }),
  });
  return new Uint8Array(spki.toSchema().toBER());
}

/** @param pointEC CKA_EC_POINT: SoftHSM (like most tokens) wraps the point in a DER OCTET STRING. */
export function ecSpki(curve: CurveAlgorithm, pointEC: Uint8Array): Uint8Array {
  const spki = new pkijs.PublicKeyInfo({
    algorithm: new pkijs.AlgorithmIdentifier({
      algorithmId: EC_PUBLIC_KEY,
      algorithmParams: new asn1js.ObjectIdentifier({ value: CURVES[curve].oid }),
    }),
    subjectPublicKey: new asn1js.BitString({ valueHex: toArrayBuffer(uncompressedPoint(curve, pointEC)) }),
  });
  return new Uint8Array(spki.toSchema().toBER());
}

function uncompressedPoint(curve: CurveAlgorithm, pointEC: Uint8Array): Uint8Array {
  const rawLength = 1 + 2 * CURVES[curve].coordinateBytes;
  if (pointEC.length === rawLength && pointEC[0] === 0x04) return pointEC;
  const parsed = asn1js.fromBER(toArrayBuffer(pointEC));
  if (
    parsed.offset !== pointEC.length ||
    !(parsed.result instanceof asn1js.OctetString) ||
    parsed.result.valueBlock.valueHexView.length !== rawLength
  ) {
    throw new Error(`CKA_EC_POINT is not an uncompressed ${curve} point`);
  }
  return parsed.result.valueBlock.valueHexView;
}

/** PKCS#11 CKM_ECDSA returns r||s, each padded to the curve size; X.509 wants SEQUENCE { r, s }. */
export function ecdsaSigValue(rawSignature: Uint8Array): Uint8Array {
  if (rawSignature.length === 0 || rawSignature.length % 2 !== 0) {
    throw new Error(`raw ECDSA signature has odd length ${rawSignature.length}`);
  }
  const half = rawSignature.length / 2;
  const sequence = new asn1js.Sequence({
    value: [unsignedInteger(rawSignature.subarray(0, half)), unsignedInteger(rawSignature.subarray(half))],
  });
  return new Uint8Array(sequence.toBER());
}

export function curveOf(paramsEC: Uint8Array): CurveAlgorithm | undefined {
  const parsed = asn1js.fromBER(toArrayBuffer(paramsEC));
  if (parsed.offset === -1 || !(parsed.result instanceof asn1js.ObjectIdentifier)) return undefined;
  const oid = parsed.result.valueBlock.toString();
  return (Object.keys(CURVES) as CurveAlgorithm[]).find((name) => CURVES[name].oid === oid);
}

export function namedCurveParams(curve: CurveAlgorithm): Buffer {
  return Buffer.from(new asn1js.ObjectIdentifier({ value: CURVES[curve].oid }).toBER());
}

/** CKA_SUBJECT, CKA_ISSUER (DER Names) and CKA_SERIAL_NUMBER (DER INTEGER) of a certificate. */
export function certificateFields(der: Uint8Array): { subject: Buffer; issuer: Buffer; serial: Buffer } {
  let cert: pkijs.Certificate;
  try {
    cert = pkijs.Certificate.fromBER(der);
  } catch (e) {
    throw new Error(`not a DER X.509 certificate: ${(e as Error).message}`, { cause: e });
  }
  return {
    subject: Buffer.from(cert.subject.toSchema().toBER()),
    issuer: Buffer.from(cert.issuer.toSchema().toBER()),
    serial: Buffer.from(cert.serialNumber.toBER()),
  };
}

export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
