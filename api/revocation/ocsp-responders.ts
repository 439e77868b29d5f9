/**
 * The API's side of the delegated OCSP responders: each responder key is in the RA token (the API
 * signs answers with it; it holds no CA key); its public key is registered in ocsp_responders for the
 * CA worker to certify; answers go out with the newest certificate of that key. Until a certificate
 * exists, OCSP answers tryLater.
 */
import { eq } from 'drizzle-orm';
import { baseKeyLabel } from '../../activities/ca/local-hsm/generations.js';
import type { PkiConfig } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { ocspResponders } from '../../db/schema.js';
import { ocspResponderLabel } from '../../hsm/provision.js';
import type { HsmToken } from '../../hsm/token.js';
import type { Signer } from '../../pki/keys.js';
import { certificateInfo } from '../../pki/x509/certificate.js';

/** How long a looked-up responder certificate is kept before the database is asked again. */
const CACHE_MS = 60_000;

export interface Responder {
  certificate: Uint8Array;
  signer: Signer;
}

/** Local issuing CAs of the configuration (certificates.issuing_ca labels). */
const localCas = (config: PkiConfig) => [
  ...new Set(config.profiles.flatMap((p) => (p.ca.type === 'local-hsm' ? [p.ca.keyLabel] : []))),
];

/**
 * Records the public key of every responder key found in the RA token (a new or rotated key replaces
 * the row, and its certificate, for the CA worker to certify). Returns the CAs whose responder has no
 * current certificate: the caller asks the CA worker (workflow refreshCrls) to certify them.
 */
export async function registerOcspResponders(
  ra: HsmToken,
  db: Database,
  config: PkiConfig,
): Promise<{ needCertificate: string[]; missingKeys: string[] }> {
  const needCertificate: string[] = [];
  const missingKeys: string[] = [];
  for (const issuingCa of localCas(config)) {
    const spki = await ra.publicKey(ocspResponderLabel(issuingCa));
    if (!spki) {
      missingKeys.push(issuingCa);
      continue;
    }
    const [row] = await db.select().from(ocspResponders).where(eq(ocspResponders.issuingCa, issuingCa));
    const sameKey = row && Buffer.from(row.spki).equals(Buffer.from(spki));
    if (!sameKey)
      await db
        .insert(ocspResponders)
        .values({ issuingCa, spki })
        .onConflictDoUpdate({
          target: ocspResponders.issuingCa,
          set: { spki, certificate: null, notAfter: null, updatedAt: new Date() },
        });
    if (!sameKey || !row.certificate || !row.notAfter || row.notAfter <= new Date())
      needCertificate.push(issuingCa);
  }
  return { needCertificate, missingKeys };
}

/** The responder of each CA, from the database, cached briefly; undefined while not certified. */
export function ocspResponderCache(ra: HsmToken, db: Database, now: () => number = Date.now) {
  const cache = new Map<string, { responder: Responder | undefined; until: number }>();
  return async function responderOf(issuingCa: string): Promise<Responder | undefined> {
    const cached = cache.get(issuingCa);
    if (cached && cached.until > now()) return cached.responder;
    const [row] = await db.select().from(ocspResponders).where(eq(ocspResponders.issuingCa, issuingCa));
    let responder: Responder | undefined;
    let until = now() + CACHE_MS;
    if (row?.certificate && row.notAfter && row.notAfter.getTime() > now()) {
      const certified = certificateInfo(row.certificate).subjectPublicKeyInfo;
      // Every generation of a CA (rotation) certifies the same responder key, the configured CA's.
      const keyLabel = ocspResponderLabel(baseKeyLabel(issuingCa));
      const key = await ra.publicKey(keyLabel);
      // A certificate for a key this token no longer holds (rotated) is no use.
      if (key && Buffer.from(certified).equals(Buffer.from(key))) {
        responder = { certificate: row.certificate, signer: await ra.signer(keyLabel) };
        until = Math.min(until, row.notAfter.getTime());
      }
    }
    // A missing responder is looked up again soon: the CA worker may certify it any moment.
    cache.set(issuingCa, { responder, until: responder ? until : now() + 2_000 });
    return responder;
  };
}
