/** Reads individual attributes of a CSR subject (CsrInfo keeps the Name as DER and as text). */
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { stringValue, toArrayBuffer } from '../../pki/x509/name.js';

export const SUBJECT_OID = {
  commonName: '2.5.4.3',
  serialNumber: '2.5.4.5',
  country: '2.5.4.6',
  locality: '2.5.4.7',
  province: '2.5.4.8',
  streetAddress: '2.5.4.9',
  organization: '2.5.4.10',
  organizationalUnit: '2.5.4.11',
  postalCode: '2.5.4.17',
} as const;

/** Every attribute of the Name in DER order (multi-valued RDNs flattened); non-text values skipped. */
export function subjectAttributes(subjectDer: Uint8Array): Array<{ oid: string; value: string }> {
  const parsed = asn1js.fromBER(toArrayBuffer(subjectDer));
  if (parsed.offset === -1) return [];
  const name = new pkijs.RelativeDistinguishedNames({ schema: parsed.result });
  return name.typesAndValues.flatMap((tv) => {
    const value = stringValue(tv.value);
    return value === undefined ? [] : [{ oid: tv.type, value }];
  });
}

export function subjectValues(subjectDer: Uint8Array, oid: string): string[] {
  return subjectAttributes(subjectDer)
    .filter((a) => a.oid === oid)
    .map((a) => a.value);
}
