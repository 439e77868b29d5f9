/**
 * Builds SCEP pkiMessages WITHOUT the product's encoder (and without pkijs/asn1js), so the decoder is
 * tested against an independent implementation:
 * - the pkcsPKIEnvelope by `openssl cms -encrypt` (PKCS#1 v1.5 key transport, chosen cipher);
 * - the signed attributes (SCEP + CMS) by `openssl asn1parse -genconf`;
 * - the signature by `openssl dgst -<digest> -sign` over the DER SET of those attributes;
 * - the SignedData around them by the small DER writer below. `asn1parse -genconf` cannot embed DER
 *   that already exists (the certificate, the envelope, the attribute SET), and `openssl cms -sign`
 *   cannot carry custom signed attributes, so the outer layers are concatenated TLVs.
 * Device keys, CSRs and self-signed signer certificates also come from the openssl command line.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const OPENSSL_CIPHERS = ['des', 'des3', 'aes128', 'aes192', 'aes256'] as const;
export type OpensslCipher = (typeof OPENSSL_CIPHERS)[number];
export const OPENSSL_DIGESTS = ['sha1', 'sha256', 'sha512'] as const;
export type OpensslDigest = (typeof OPENSSL_DIGESTS)[number];

/** The product's names (node:crypto / types.ts) for the openssl ones. */
export const CIPHER_NAME = {
  des: 'des-cbc',
  des3: 'des-ede3-cbc',
  aes128: 'aes-128-cbc',
  aes192: 'aes-192-cbc',
  aes256: 'aes-256-cbc',
} as const satisfies Record<OpensslCipher, string>;
export const DIGEST_NAME = {
  sha1: 'SHA-1',
  sha256: 'SHA-256',
  sha512: 'SHA-512',
} as const satisfies Record<OpensslDigest, string>;

/** Single DES lives in OpenSSL 3's legacy provider. */
export const providersFor = (cipher: string): string[] =>
  cipher === 'des' || cipher === 'des-cbc' ? ['-provider', 'legacy', '-provider', 'default'] : [];

const OID = {
  signedData: '1.2.840.113549.1.7.2',
  data: '1.2.840.113549.1.7.1',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  messageType: '2.16.840.1.113733.1.9.2',
  senderNonce: '2.16.840.1.113733.1.9.5',
  transactionID: '2.16.840.1.113733.1.9.7',
  rsaEncryption: '1.2.840.113549.1.1.1',
};
const DIGEST_OID: Record<OpensslDigest, string> = {
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha512: '2.16.840.1.101.3.4.2.3',
};
const RSA_WITH_DIGEST_OID: Record<OpensslDigest, string> = {
  sha1: '1.2.840.113549.1.1.5',
  sha256: '1.2.840.113549.1.1.11',
  sha512: '1.2.840.113549.1.1.13',
};

export async function openssl(args: string[], input?: Uint8Array): Promise<Buffer> {
  const child = run('openssl', args, { encoding: 'buffer', maxBuffer: 16 * 1024 * 1024 });
  child.child.stdin?.end(input);
  try {
    return (await child).stdout;
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`openssl ${args.join(' ')}: ${e.stderr?.toString() ?? e.message}`);
  }
}

let counter = 0;
const unique = (dir: string, name: string) => join(dir, `${process.pid}-${++counter}-${name}`);

export interface OpensslDevice {
  keyFile: string;
  /** Self-signed signer certificate (PEM file), as a device makes for its first PKCSReq. */
  certFile: string;
  certDer: Uint8Array;
  /** PKCS#10 request (DER) for `CN=<cn>`, with challengePassword when one is given. */
  csrDer: Uint8Array;
}

/** What else a device's CSR asks for (an attacker's wish list, or an MDM profile's SANs). */
export interface CsrWishes {
  /** More subject lines after CN, e.g. ['O = Evil Corp']. */
  subject?: string[];
  /** subjectAltName entries in openssl syntax, e.g. ['DNS:vpn.example.com', 'URI:IntuneDeviceId://42']. */
  san?: string[];
  /** Asks for basicConstraints CA:TRUE. */
  ca?: boolean;
}

/** An RSA-2048 device key, its CSR and self-signed signer certificate, all by openssl. */
export async function makeDevice(
  dir: string,
  cn: string,
  challenge?: string,
  wishes: CsrWishes = {},
): Promise<OpensslDevice> {
  if (!/^[\w .-]+$/.test(cn) || (challenge !== undefined && !/^[\w.-]+$/.test(challenge)))
    throw new Error('keep cn and challenge to plain characters (they go into an openssl config)');
  const extensions = [
    ...(wishes.san?.length ? [`subjectAltName = ${wishes.san.join(',')}`] : []),
    ...(wishes.ca ? ['basicConstraints = critical,CA:TRUE'] : []),
  ];
  const keyFile = unique(dir, 'device-key.pem');
  const certFile = unique(dir, 'device-signer.pem');
  const csrFile = unique(dir, 'device-csr.der');
  const conf = unique(dir, 'req.cnf');
  writeFileSync(
    conf,
    [
      '[req]',
      'prompt = no',
      'distinguished_name = dn',
      challenge !== undefined ? 'attributes = attrs' : '',
      extensions.length > 0 ? 'req_extensions = wishes' : '',
      '[dn]',
      `CN = ${cn}`,
      ...(wishes.subject ?? []),
      '[attrs]',
      `challengePassword = ${challenge ?? ''}`,
      '[wishes]',
      ...extensions,
      '',
    ].join('\n'),
  );
  await openssl(['genrsa', '-out', keyFile, '2048']);
  await openssl(['req', '-new', '-config', conf, '-key', keyFile, '-outform', 'DER', '-out', csrFile]);
  await openssl(['req', '-x509', '-new', '-config', conf, '-key', keyFile, '-days', '1', '-out', certFile]);
  const certDer = await openssl(['x509', '-in', certFile, '-outform', 'DER']);
  return {
    keyFile,
    certFile,
    certDer: new Uint8Array(certDer),
    csrDer: new Uint8Array(readFileSync(csrFile)),
  };
}

export interface PkiMessageOptions {
  dir: string;
  /** PEM files of the recipients (the RA certificate; scepclient also adds the CA). */
  recipients: string[];
  signer: { keyFile: string; certDer: Uint8Array };
  cipher: OpensslCipher;
  digest: OpensslDigest;
  /** 19 PKCSReq, 17 RenewalReq, 20 CertPoll, 21 GetCert, 22 GetCRL; any text for negative tests. */
  messageType: number | string;
  transactionId: string;
  senderNonce?: Uint8Array;
  /** What goes into the envelope: a CSR (DER), an IssuerAndSubject, an IssuerAndSerialNumber. */
  content: Uint8Array;
  /** Adds signingTime (default true). */
  signingTime?: boolean;
  /** 'rsaEncryption' as certmonger writes it, or '<digest>WithRSAEncryption' (default, as micromdm). */
  signatureAlgorithm?: 'rsaEncryption' | 'withDigest';
}

export interface BuiltPkiMessage {
  der: Uint8Array;
  senderNonce: Uint8Array;
  /** The pkcsPKIEnvelope alone, as openssl cms -encrypt wrote it. */
  envelope: Uint8Array;
}

/**
 * A device's PKCSReq of its own CSR, signed with its self-signed certificate (SHA-256), encrypted to
 * `raFile`: the request most tests send. DER of the pkiMessage.
 */
export async function buildPkcsReq(
  device: OpensslDevice,
  opts: { dir: string; raFile: string; transactionId: string; cipher?: OpensslCipher },
): Promise<Uint8Array> {
  const built = await buildPkiMessage({
    dir: opts.dir,
    recipients: [opts.raFile],
    signer: device,
    cipher: opts.cipher ?? 'aes128',
    digest: 'sha256',
    messageType: 19,
    transactionId: opts.transactionId,
    content: device.csrDer,
  });
  return built.der;
}

export async function buildPkiMessage(opts: PkiMessageOptions): Promise<BuiltPkiMessage> {
  const { dir, cipher, digest } = opts;
  // 1. The envelope.
  const contentFile = unique(dir, 'content.der');
  const envelopeFile = unique(dir, 'envelope.der');
  writeFileSync(contentFile, opts.content);
  await openssl([
    'cms',
    '-encrypt',
    '-binary',
    '-outform',
    'DER',
    `-${cipher}`,
    ...providersFor(cipher),
    '-in',
    contentFile,
    '-out',
    envelopeFile,
    ...opts.recipients,
  ]);
  const envelope = new Uint8Array(readFileSync(envelopeFile));

  // 2. The signed attributes, as a DER SET by asn1parse -genconf.
  if (!/^[A-Za-z0-9+/=._:-]+$/.test(opts.transactionId) || !/^[A-Za-z0-9]+$/.test(String(opts.messageType)))
    throw new Error('transactionId/messageType must be nconf-safe printable text');
  const senderNonce = opts.senderNonce ?? new Uint8Array(randomBytes(16));
  const messageDigest = createHash(digest).update(envelope).digest('hex');
  const attributes: Array<[string, string, string]> = [
    ['ct', OID.contentType, `OID:${OID.data}`],
    ['md', OID.messageDigest, `FORMAT:HEX,OCTETSTRING:${messageDigest}`],
    ['mt', OID.messageType, `PRINTABLESTRING:${opts.messageType}`],
    ['tid', OID.transactionID, `PRINTABLESTRING:${opts.transactionId}`],
    ['sn', OID.senderNonce, `FORMAT:HEX,OCTETSTRING:${Buffer.from(senderNonce).toString('hex')}`],
  ];
  if (opts.signingTime !== false)
    attributes.push(['st', OID.signingTime, `UTCTIME:${utcTime(new Date(Date.now() - 60_000))}`]);
  const conf = [
    'asn1 = SET:attrs',
    '[attrs]',
    ...attributes.map(([name]) => `${name} = SEQUENCE:${name}_attr`),
    ...attributes.flatMap(([name, oid, value]) => [
      `[${name}_attr]`,
      `type = OID:${oid}`,
      `values = SET:${name}_values`,
      `[${name}_values]`,
      `value = ${value}`,
    ]),
    '',
  ].join('\n');
  const confFile = unique(dir, 'attrs.cnf');
  const attrsFile = unique(dir, 'attrs.der');
  writeFileSync(confFile, conf);
  await openssl(['asn1parse', '-genconf', confFile, '-out', attrsFile, '-noout']);
  const attrsSet = new Uint8Array(readFileSync(attrsFile));

  // 3. The signature over the DER SET (RFC 5652 5.4).
  const signature = await openssl(['dgst', `-${digest}`, '-sign', opts.signer.keyFile, attrsFile]);

  // 4. The SignedData.
  const der = assembleSignedData({
    digestOid: DIGEST_OID[digest],
    signatureOid:
      opts.signatureAlgorithm === 'rsaEncryption' ? OID.rsaEncryption : RSA_WITH_DIGEST_OID[digest],
    eContent: envelope,
    certificates: [opts.signer.certDer],
    signerCertificate: opts.signer.certDer,
    signedAttrsSet: attrsSet,
    signature: new Uint8Array(signature),
  });
  return { der, senderNonce, envelope };
}

/**
 * ContentInfo(SignedData) with one SignerInfo (sid = issuerAndSerialNumber of `signerCertificate`).
 * `signedAttrsSet` is the DER SET that was signed; it is re-tagged [0] IMPLICIT.
 */
export function assembleSignedData(parts: {
  digestOid: string;
  signatureOid: string;
  eContent: Uint8Array;
  certificates: Uint8Array[];
  signerCertificate: Uint8Array;
  signedAttrsSet: Uint8Array;
  signature: Uint8Array;
}): Uint8Array {
  const { issuer, serial } = issuerAndSerial(parts.signerCertificate);
  const digestAlg = der.seq(der.oid(parts.digestOid), der.nul());
  const signedAttrs = new Uint8Array(parts.signedAttrsSet);
  signedAttrs[0] = 0xa0;
  const signerInfo = der.seq(
    der.int(1),
    der.seq(issuer, serial),
    digestAlg,
    signedAttrs,
    der.seq(der.oid(parts.signatureOid), der.nul()),
    der.tlv(0x04, parts.signature),
  );
  const signedData = der.seq(
    der.int(1),
    der.tlv(0x31, digestAlg),
    der.seq(der.oid(OID.data), der.tlv(0xa0, der.tlv(0x04, parts.eContent))),
    der.tlv(0xa0, ...parts.certificates),
    der.tlv(0x31, signerInfo),
  );
  return der.seq(der.oid(OID.signedData), der.tlv(0xa0, signedData));
}

/** Issuer Name and serial INTEGER (both as DER) of a certificate. */
export function issuerAndSerial(certDer: Uint8Array): { issuer: Uint8Array; serial: Uint8Array } {
  const [tbs] = der.children(certDer);
  if (!tbs) throw new Error('not a certificate');
  const fields = der.children(tbs.bytes);
  const offset = fields[0]?.tag === 0xa0 ? 1 : 0;
  const serial = fields[offset];
  const issuer = fields[offset + 2];
  if (!serial || !issuer) throw new Error('not a certificate');
  return { issuer: issuer.bytes, serial: serial.bytes };
}

function utcTime(date: Date): string {
  return `${date.toISOString().slice(2, 19).replace(/[-T:]/g, '')}Z`;
}

export interface Tlv {
  tag: number;
  /** Offset of the tag byte in the buffer given to `children`/`walk`. */
  start: number;
  headerLength: number;
  /** The whole TLV. */
  bytes: Uint8Array;
  /** The value only. */
  value: Uint8Array;
}

/** A minimal DER reader/writer (single-byte tags, definite lengths): enough to build and take apart CMS. */
export const der = {
  length(n: number): Uint8Array {
    if (n < 0x80) return Uint8Array.of(n);
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    return Uint8Array.of(0x80 | bytes.length, ...bytes);
  },
  tlv(tag: number, ...values: Uint8Array[]): Uint8Array {
    const value = Buffer.concat(values);
    return new Uint8Array(Buffer.concat([Uint8Array.of(tag), der.length(value.length), value]));
  },
  seq: (...values: Uint8Array[]) => der.tlv(0x30, ...values),
  nul: () => Uint8Array.of(0x05, 0x00),
  int(n: number): Uint8Array {
    if (n < 0 || n > 127) throw new Error('small non-negative integers only');
    return Uint8Array.of(0x02, 0x01, n);
  },
  oid(dotted: string): Uint8Array {
    const arcs = dotted.split('.').map(Number);
    const body: number[] = [40 * arcs[0]! + arcs[1]!];
    for (const arc of arcs.slice(2)) {
      const chunk: number[] = [arc & 0x7f];
      for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
      body.push(...chunk);
    }
    return der.tlv(0x06, Uint8Array.from(body));
  },
  /** Reads one TLV at `at`; undefined when the bytes are not a well-formed definite-length TLV. */
  read(buf: Uint8Array, at = 0): Tlv | undefined {
    if (at + 2 > buf.length) return undefined;
    const tag = buf[at]!;
    if ((tag & 0x1f) === 0x1f) return undefined;
    let length = buf[at + 1]!;
    let headerLength = 2;
    if (length & 0x80) {
      const n = length & 0x7f;
      if (n === 0 || n > 4 || at + 2 + n > buf.length) return undefined;
      length = 0;
      for (let i = 0; i < n; i++) length = length * 256 + buf[at + 2 + i]!;
      headerLength += n;
    }
    const end = at + headerLength + length;
    if (end > buf.length) return undefined;
    return {
      tag,
      start: at,
      headerLength,
      bytes: buf.subarray(at, end),
      value: buf.subarray(at + headerLength, end),
    };
  },
  /** The TLVs inside a constructed TLV given as a whole. */
  children(tlvBytes: Uint8Array): Tlv[] {
    const outer = der.read(tlvBytes);
    if (!outer) return [];
    const out: Tlv[] = [];
    for (let at = outer.headerLength; at < outer.bytes.length; ) {
      const child = der.read(outer.bytes, at);
      if (!child) break;
      out.push(child);
      at += child.bytes.length;
    }
    return out;
  },
  /** Every TLV header in the buffer, depth-first (offsets relative to `buf`), for mutation targets. */
  walk(buf: Uint8Array, base = 0, out: Tlv[] = []): Tlv[] {
    for (let at = 0; at < buf.length; ) {
      const t = der.read(buf, at);
      if (!t) break;
      out.push({ ...t, start: base + at });
      if (t.tag & 0x20) der.walk(t.value, base + at + t.headerLength, out);
      at += t.bytes.length;
    }
    return out;
  },
};
