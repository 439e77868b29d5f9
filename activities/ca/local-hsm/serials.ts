/**
 * Serial numbers of the certificates our CA signs (RFC 5280 4.1.2.2, CA/B Forum: at least 64 bits of
 * CSPRNG output). Drawn here, in the activity, from node:crypto's CSPRNG (never from the workflow's
 * random source, which is seeded from the run id), and recorded before signing: a clash with a
 * serial the CA already used is seen by the primary key and redrawn, and a retried issuance of the
 * same enrollment finds its serial and signs with it again.
 */
import { randomBytes } from 'node:crypto';
import { and, eq } from 'drizzle-orm';
import type { Database } from '../../../db/client.js';
import { serials } from '../../../db/schema.js';

/** 16 bytes: 126 random bits, the top two fixed so the DER INTEGER is positive and always 16 bytes. */
export const SERIAL_BYTES = 16;
const MAX_DRAWS = 8;

export type RandomSource = (bytes: number) => Uint8Array;

/** A positive 16-byte serial with 126 bits from `random` (lower-case hex, as certificates store it). */
export function drawSerialHex(random: RandomSource = randomBytes): string {
  const bytes = Buffer.from(random(SERIAL_BYTES));
  if (bytes.length !== SERIAL_BYTES) throw new Error(`random source gave ${bytes.length} bytes`);
  // 0b01xxxxxx: never a sign bit (no 00 padding byte in DER), never a leading zero byte dropped.
  bytes[0] = (bytes[0]! & 0x3f) | 0x40;
  return bytes.toString('hex');
}

/**
 * The serial reserved for this enrollment under this CA, drawing and recording a new one the first
 * time. Validity is refreshed on each attempt: a certificate is only ever handed out by the attempt
 * that stored it, so an earlier unstored signature never escapes.
 */
export async function reserveSerial(
  db: Database,
  input: {
    /**
     * The signing CA, or how to choose it from the CA an earlier attempt reserved under (a retry
     * across an issuing-CA promotion keeps its CA): one read serves both.
     */
    issuingCa: string | ((reservedUnder: string | undefined) => string);
    enrollmentId: string;
    notBefore: Date;
    notAfter: Date;
  },
  random: RandomSource = randomBytes,
): Promise<{ serialHex: string; redraws: number; issuingCa: string }> {
  const [existing] = await db
    .select({ serialHex: serials.serialHex, issuingCa: serials.issuingCa })
    .from(serials)
    .where(eq(serials.enrollmentId, input.enrollmentId));
  const issuingCa =
    typeof input.issuingCa === 'function' ? input.issuingCa(existing?.issuingCa) : input.issuingCa;
  const reservation = {
    issuingCa,
    enrollmentId: input.enrollmentId,
    notBefore: input.notBefore,
    notAfter: input.notAfter,
  };
  if (existing && existing.issuingCa === issuingCa) {
    await db
      .update(serials)
      .set({ notBefore: input.notBefore, notAfter: input.notAfter })
      .where(and(eq(serials.issuingCa, issuingCa), eq(serials.serialHex, existing.serialHex)));
    return { serialHex: existing.serialHex, redraws: 0, issuingCa };
  }
  if (existing)
    throw new Error(
      `enrollment ${input.enrollmentId} reserved a serial under CA ${existing.issuingCa}, not ${issuingCa}`,
    );
  for (let draw = 0; draw < MAX_DRAWS; draw++) {
    const serialHex = drawSerialHex(random);
    const inserted = await db
      .insert(serials)
      .values({ ...reservation, serialHex })
      .onConflictDoNothing()
      .returning({ serialHex: serials.serialHex });
    if (inserted.length > 0) return { serialHex, redraws: draw, issuingCa };
    // A clash, or a concurrent attempt of the same enrollment won the race: look again.
    const [raced] = await db
      .select({ serialHex: serials.serialHex })
      .from(serials)
      .where(eq(serials.enrollmentId, input.enrollmentId));
    if (raced) return { serialHex: raced.serialHex, redraws: draw, issuingCa };
  }
  throw new Error(`no free serial after ${MAX_DRAWS} draws: the random source is broken`);
}
