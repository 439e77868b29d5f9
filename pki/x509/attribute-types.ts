/**
 * Name attribute types by short name and OID. Pure data (no ASN.1 library), so workflow code can
 * compare a CSR's subject with a template's without bundling pkijs.
 */
export type StringKind = 'utf8' | 'printable' | 'ia5';

export interface AttributeType {
  short: string;
  oid: string;
  kind: StringKind;
}

export const ATTRIBUTE_TYPES: readonly AttributeType[] = [
  { short: 'CN', oid: '2.5.4.3', kind: 'utf8' },
  { short: 'SN', oid: '2.5.4.4', kind: 'utf8' },
  // X.520 and RFC 5280 fix these two to PrintableString.
  { short: 'serialNumber', oid: '2.5.4.5', kind: 'printable' },
  { short: 'C', oid: '2.5.4.6', kind: 'printable' },
  { short: 'L', oid: '2.5.4.7', kind: 'utf8' },
  { short: 'ST', oid: '2.5.4.8', kind: 'utf8' },
  { short: 'street', oid: '2.5.4.9', kind: 'utf8' },
  { short: 'O', oid: '2.5.4.10', kind: 'utf8' },
  { short: 'OU', oid: '2.5.4.11', kind: 'utf8' },
  { short: 'title', oid: '2.5.4.12', kind: 'utf8' },
  { short: 'GN', oid: '2.5.4.42', kind: 'utf8' },
  // PKCS#9 and RFC 4519 define these as IA5String.
  { short: 'emailAddress', oid: '1.2.840.113549.1.9.1', kind: 'ia5' },
  { short: 'DC', oid: '0.9.2342.19200300.100.1.25', kind: 'ia5' },
  { short: 'UID', oid: '0.9.2342.19200300.100.1.1', kind: 'utf8' },
];

const BY_SHORT = new Map(ATTRIBUTE_TYPES.map((a) => [a.short.toLowerCase(), a]));
const BY_OID = new Map(ATTRIBUTE_TYPES.map((a) => [a.oid, a]));
const DOTTED_OID = /^[0-2](\.(0|[1-9]\d*))+$/;

/** The attribute named by a short name (case-insensitive) or a dotted OID; undefined when unknown. */
export function attributeType(typeOrOid: string): AttributeType | undefined {
  const known = BY_SHORT.get(typeOrOid.toLowerCase()) ?? BY_OID.get(typeOrOid);
  if (known) return known;
  return DOTTED_OID.test(typeOrOid) ? { short: typeOrOid, oid: typeOrOid, kind: 'utf8' } : undefined;
}

/** Short name of an OID where one is known (for messages and text forms), else the OID. */
export function shortName(oid: string): string {
  return BY_OID.get(oid)?.short ?? oid;
}
