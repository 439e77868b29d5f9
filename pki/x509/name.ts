/**
 * X.501 Names and GeneralNames. Names are built with one attribute per RDN on purpose: pkijs'
 * RelativeDistinguishedNames puts all its typesAndValues into ONE multi-valued RDN.
 */
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { attributeType, type StringKind, shortName } from './attribute-types.js';
import type { SubjectAltNames } from './types.js';

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** DER Name with one attribute per RDN, in the order given (first = outermost in the DER). */
export function encodeName(rdns: Array<[string, string]>): Uint8Array {
  const sequence = new asn1js.Sequence({
    value: rdns.map(([type, value]) => {
      const attribute = attributeType(type);
      if (!attribute) throw new Error(`unknown name attribute type "${type}"`);
      return new asn1js.Set({
        value: [
          new asn1js.Sequence({
            value: [
              new asn1js.ObjectIdentifier({ value: attribute.oid }),
              directoryString(attribute.kind, value),
            ],
          }),
        ],
      });
    }),
  });
  return new Uint8Array(sequence.toBER());
}

function directoryString(kind: StringKind, value: string): asn1js.BaseBlock {
  if (kind === 'ia5') {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: IA5 is the 7-bit range
    if (!/^[\x00-\x7f]*$/.test(value)) throw new Error(`"${value}" is not IA5 (ASCII) text`);
    return new asn1js.IA5String({ value });
  }
  if (kind === 'printable') {
    if (PRINTABLE.test(value)) return new asn1js.PrintableString({ value });
    throw new Error(`"${value}" is not a PrintableString`);
  }
  return new asn1js.Utf8String({ value });
}

/** "CN=x,O=y": RDNs in DER order (like OpenSSL's default), multi-valued RDNs joined by '+'. */
export function nameToText(der: Uint8Array): string {
  const parsed = asn1js.fromBER(toArrayBuffer(der));
  if (parsed.offset === -1 || !(parsed.result instanceof asn1js.Sequence)) throw new Error('not a DER Name');
  return parsed.result.valueBlock.value
    .map((rdn) => {
      if (!(rdn instanceof asn1js.Set)) throw new Error('Name holds a non-SET RDN');
      return rdn.valueBlock.value.map(attributeText).join('+');
    })
    .join(',');
}

function attributeText(block: asn1js.AsnType): string {
  const attribute = new pkijs.AttributeTypeAndValue({ schema: block });
  const short = shortName(attribute.type);
  const text = stringValue(attribute.value);
  return `${short}=${text === undefined ? `#${Buffer.from(attribute.value.toBER()).toString('hex')}` : escapeRfc4514(text)}`;
}

/** The text of any ASN.1 character string type, or undefined for non-string values. */
export function stringValue(block: unknown): string | undefined {
  if (
    block instanceof asn1js.Utf8String ||
    block instanceof asn1js.PrintableString ||
    block instanceof asn1js.IA5String ||
    block instanceof asn1js.BmpString ||
    block instanceof asn1js.UniversalString ||
    block instanceof asn1js.TeletexString ||
    block instanceof asn1js.VisibleString ||
    block instanceof asn1js.NumericString
  ) {
    return block.valueBlock.value;
  }
  return undefined;
}

function escapeRfc4514(text: string): string {
  return text
    .replace(/[\\,+"<>;=]/g, (c) => `\\${c}`)
    .replace(/^[ #]/, (c) => `\\${c}`)
    .replace(/ $/, '\\ ');
}

// GeneralName CHOICE tags (RFC 5280 4.2.1.6).
const RFC822_NAME = 1;
const DNS_NAME = 2;
const URI = 6;
const IP_ADDRESS = 7;

export function encodeGeneralNames(sans: SubjectAltNames): pkijs.GeneralName[] {
  return [
    ...sans.dns.map((value) => new pkijs.GeneralName({ type: DNS_NAME, value })),
    ...sans.email.map((value) => new pkijs.GeneralName({ type: RFC822_NAME, value })),
    ...sans.uri.map((value) => new pkijs.GeneralName({ type: URI, value })),
    ...sans.ip.map(
      (value) =>
        new pkijs.GeneralName({
          type: IP_ADDRESS,
          value: new asn1js.OctetString({ valueHex: toArrayBuffer(ipToBytes(value)) }),
        }),
    ),
  ];
}

/** Kinds other than DNS, e-mail, URI and IP (otherName, directoryName...) are not represented. */
export function decodeGeneralNames(names: pkijs.GeneralName[]): SubjectAltNames {
  const sans: SubjectAltNames = { dns: [], email: [], uri: [], ip: [] };
  for (const name of names) {
    if (name.type === DNS_NAME) sans.dns.push(String(name.value));
    else if (name.type === RFC822_NAME) sans.email.push(String(name.value));
    else if (name.type === URI) sans.uri.push(String(name.value));
    else if (name.type === IP_ADDRESS) sans.ip.push(ipToText(name.value.valueBlock.valueHexView));
  }
  return sans;
}

function ipToBytes(text: string): Uint8Array {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const bytes = v4.slice(1).map(Number);
    if (bytes.every((b) => b <= 255)) return Uint8Array.from(bytes);
  }
  if (text.includes(':')) {
    const [head = '', tail, extra] = text.split('::');
    const groups = (part: string | undefined) => (part ? part.split(':') : []);
    const left = groups(head);
    const right = groups(tail);
    const missing = 8 - left.length - right.length;
    const all = tail === undefined ? left : [...left, ...Array<string>(missing).fill('0'), ...right];
    if (extra === undefined && (tail === undefined || missing >= 1) && all.length === 8) {
      if (all.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) {
        return Uint8Array.from(
          all.flatMap((g) => [Number.parseInt(g, 16) >> 8, Number.parseInt(g, 16) & 0xff]),
        );
      }
    }
  }
  throw new Error(`"${text}" is not an IPv4 or IPv6 address`);
}

function ipToText(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) return `#${Buffer.from(bytes).toString('hex')}`;
  const groups = Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16));
  // RFC 5952: compress the longest run (length >= 2) of zero groups, the first one on ties.
  let best = { start: -1, length: 0 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > best.length) best = { start: i, length: j - i };
    i = j;
  }
  if (best.length < 2) return groups.join(':');
  return `${groups.slice(0, best.start).join(':')}::${groups.slice(best.start + best.length).join(':')}`;
}

export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
