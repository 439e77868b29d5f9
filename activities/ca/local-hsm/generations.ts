/**
 * The generations of a profile's local issuing CA (db/schema.ts ca_generations), read by the CA
 * adapter (which key signs) and by the API (which chain GetCACert serves, which CRL a URL names,
 * which CA an OCSP request is about). Rotation (workflows/ca-rotation.ts) writes them.
 *
 * Generation 1 is the configured keyLabel; generation n > 1 lives under `<keyLabel>/g<n>`, so the
 * configuration never changes during a rotation and certificates.issuing_ca names the key that
 * signed each certificate.
 */
import { asc, eq } from 'drizzle-orm';
import type { Database } from '../../../db/client.js';
import { type CaGenerationState, caGenerations } from '../../../db/schema.js';

export type { CaGenerationState } from '../../../db/schema.js';

export interface CaGeneration {
  profile: string;
  generation: number;
  keyLabel: string;
  state: CaGenerationState;
  certificate: Uint8Array;
  raCertificate: Uint8Array | null;
  notAfter: Date;
  promotedAt: Date | null;
  deactivatedAt: Date | null;
  destroyedAt: Date | null;
}

export function generationKeyLabel(baseLabel: string, generation: number): string {
  return generation === 1 ? baseLabel : `${baseLabel}/g${generation}`;
}

const GENERATION_NUMBER = /^[1-9][0-9]*$/;

/** Whether `issuingCa` (a key label) is a generation of the CA configured as `baseLabel`. */
export function isGenerationOf(baseLabel: string, issuingCa: string): boolean {
  if (issuingCa === baseLabel) return true;
  // Checked on every CA lookup: no regular expression built per call.
  const prefix = `${baseLabel}/g`;
  return issuingCa.startsWith(prefix) && GENERATION_NUMBER.test(issuingCa.slice(prefix.length));
}

/** The configured label a generation label belongs to (its OCSP responder key is that CA's). */
export function baseKeyLabel(issuingCa: string): string {
  return issuingCa.replace(/\/g[1-9][0-9]*$/, '');
}

export async function listGenerations(db: Database, profile: string): Promise<CaGeneration[]> {
  return db
    .select()
    .from(caGenerations)
    .where(eq(caGenerations.profile, profile))
    .orderBy(asc(caGenerations.generation));
}

/** The generation that signs new certificates: the newest active one (undefined: none recorded). */
export function issuingGeneration(rows: CaGeneration[]): CaGeneration | undefined {
  return rows.filter((r) => r.state === 'active').at(-1);
}

/** The generation announced by GetNextCACert, waiting for promotion. */
export function nextGeneration(rows: CaGeneration[]): CaGeneration | undefined {
  return rows.find((r) => r.state === 'pre-activation');
}

/**
 * The generations of a profile, cached for `ttlMs`: SCEP and OCSP ask on every request, a rotation
 * changes them a few times a year, and a promotion may show up to `ttlMs` late (the old CA stays
 * valid meanwhile, so a certificate it signs in that moment is still good).
 */
export function generationReader(db: Database, ttlMs = 1000, now: () => number = Date.now) {
  const cache = new Map<string, { rows: Promise<CaGeneration[]>; until: number }>();
  return (profile: string): Promise<CaGeneration[]> => {
    const hit = cache.get(profile);
    if (hit && hit.until > now()) return hit.rows;
    const rows = listGenerations(db, profile);
    cache.set(profile, { rows, until: now() + ttlMs });
    // A failed read is not cached.
    rows.catch(() => cache.delete(profile));
    return rows;
  };
}

export type GenerationReader = ReturnType<typeof generationReader>;
