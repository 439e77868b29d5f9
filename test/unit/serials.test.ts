import { randomBytes, randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { drawSerialHex, reserveSerial, SERIAL_BYTES } from '../../activities/ca/local-hsm/serials.js';
import { type DatabaseHandle, openDatabase } from '../../db/client.js';
import { serials } from '../../db/schema.js';

let handle: DatabaseHandle;
beforeAll(async () => {
  handle = await openDatabase({ url: inject('stack').databaseUrl, pgliteDir: '' });
});
afterAll(async () => {
  await handle?.close();
});

const validity = { notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000) };

describe('certificate serial numbers', () => {
  it('drawSerialHex (node:crypto randomBytes(16), top bits fixed to 01): 10,000 draws are unique, positive, 16 bytes, 126 random bits', () => {
    const drawn = Array.from({ length: 10_000 }, () => drawSerialHex());
    expect(new Set(drawn).size).toBe(10_000);
    const ones = new Array<number>(SERIAL_BYTES * 8).fill(0);
    for (const hex of drawn) {
      const bytes = Buffer.from(hex, 'hex');
      expect(bytes.length).toBe(SERIAL_BYTES);
      // 0b01......: positive (no sign bit) and no leading zero byte DER would drop.
      expect(bytes[0]! >> 6).toBe(0b01);
      for (let bit = 0; bit < SERIAL_BYTES * 8; bit++)
        if (bytes[bit >> 3]! & (0x80 >> (bit & 7))) ones[bit]!++;
    }
    // Every one of the 126 random positions varies (each is set in roughly half of the draws).
    const varying = ones.filter((n) => n > 4000 && n < 6000).length;
    expect(varying).toBe(126);
    expect(varying).toBeGreaterThanOrEqual(64);
  });

  it('records the serial before signing and redraws a forced clash with an existing serial of the CA', async () => {
    const issuingCa = `issuing-ca/serial-test-${randomUUID().slice(0, 8)}`;
    const first = await reserveSerial(handle.db, {
      issuingCa,
      enrollmentId: `enroll/t/${randomUUID()}`,
      ...validity,
    });
    // A broken-looking random source: first the serial already taken, then fresh bytes.
    const taken = Buffer.from(first.serialHex, 'hex');
    let calls = 0;
    const clashing = (n: number) => (calls++ === 0 ? Uint8Array.from(taken) : randomBytes(n));
    const enrollmentId = `enroll/t/${randomUUID()}`;
    const second = await reserveSerial(handle.db, { issuingCa, enrollmentId, ...validity }, clashing);
    expect(second.redraws).toBe(1);
    expect(second.serialHex).not.toBe(first.serialHex);
    const [row] = await handle.db.select().from(serials).where(eq(serials.enrollmentId, enrollmentId));
    expect(row?.serialHex).toBe(second.serialHex);
    // The same enrollment again (a retried activity) keeps its serial: the TBS it signs is the same.
    const again = await reserveSerial(handle.db, { issuingCa, enrollmentId, ...validity });
    expect(again).toEqual({ serialHex: second.serialHex, redraws: 0, issuingCa });
  });

  it('reserves 300 serials concurrently without a clash left unnoticed', async () => {
    const issuingCa = `issuing-ca/serial-load-${randomUUID().slice(0, 8)}`;
    const reserved = await Promise.all(
      Array.from({ length: 300 }, () =>
        reserveSerial(handle.db, { issuingCa, enrollmentId: `enroll/t/${randomUUID()}`, ...validity }),
      ),
    );
    expect(new Set(reserved.map((r) => r.serialHex)).size).toBe(300);
    const rows = await handle.db.select().from(serials).where(eq(serials.issuingCa, issuingCa));
    expect(rows).toHaveLength(300);
  });
});
