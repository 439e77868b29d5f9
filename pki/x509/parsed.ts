/**
 * Parsed certificates, kept per process. The same DER is read many times: the RA and CA certificates
 * go into every SCEP answer and every issued certificate, and a certificate just issued is read by the
 * store, the record and the device's answer. pkijs parsing is the largest CPU cost of an enrollment
 * (asn1js and pkijs were a fifth of the dev stack's CPU in the bench profile), so each DER is parsed
 * once, looked up by its SHA-256. What callers get is shared: read-only.
 */
import { createHash } from 'node:crypto';
import * as pkijs from 'pkijs';

/** A few thousand certificates at most in memory: the CA chain stays, issued ones pass through. */
const CAPACITY = 2048;

/** A bounded map that forgets what was used least recently. */
export class ParsedCache<T> {
  private readonly entries = new Map<string, T>();

  constructor(private readonly capacity = CAPACITY) {}

  get(der: Uint8Array, parse: (der: Uint8Array) => T): T {
    const key = createHash('sha256').update(der).digest('base64');
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      // Most recently used goes last; the first entry is the one to forget.
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const value = parse(der);
    this.entries.set(key, value);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
    return value;
  }
}

const certificates = new ParsedCache<pkijs.Certificate>();

/** The certificate of a DER, parsed once per process. Read-only: it is shared. */
export function parsedCertificate(der: Uint8Array): pkijs.Certificate {
  return certificates.get(der, (bytes) => pkijs.Certificate.fromBER(bytes));
}
