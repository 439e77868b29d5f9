import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { MdmUnavailableError } from '../../activities/mdm/http.js';
import { deviceSerialOf, type JamfConfig, jamfVerifier } from '../../activities/mdm/jamf.js';
import { createOneTimeChallenge } from '../../activities/mdm/one-time-challenge.js';
import { type DatabaseHandle, openDatabase } from '../../db/client.js';
import { parseCsr } from '../../pki/x509/csr.js';
import { makeCsr } from '../fakes/csr.js';
import { type FakeJamf, startFakeJamf } from '../fakes/jamf.js';

const { databaseUrl } = inject('stack');
const creds = { clientId: 'jamf-client', clientSecret: 'jamf-secret' };
const env = { JAMF_SECRET: creds.clientSecret };
const profile = `jamf-${randomUUID().slice(0, 8)}`;
let handle: DatabaseHandle;
let jamf: FakeJamf;
let cfg: JamfConfig;

beforeAll(async () => {
  handle = await openDatabase({ url: databaseUrl, pgliteDir: '' });
  jamf = await startFakeJamf(creds);
  jamf.knobs.computers.add('C02LAPTOP01');
  jamf.knobs.mobileDevices.add('DMPIPHONE01');
  cfg = {
    type: 'jamf',
    baseUrl: jamf.url,
    clientId: creds.clientId,
    clientSecretEnv: 'JAMF_SECRET',
    webhookUser: 'jamf',
    webhookPasswordEnv: 'JAMF_WEBHOOK_PASSWORD',
    challengeTtlSeconds: 3600,
    deviceIdFrom: 'serialNumber',
    timeoutMs: 500,
  };
});
afterAll(async () => {
  await jamf?.close();
  await handle?.close();
});
afterEach(() => {
  jamf.calls.length = 0;
});

async function requestFor(subject: Array<[string, string]>, challenge?: string) {
  const c = challenge ?? (await createOneTimeChallenge(handle.db, { profile, ttlSeconds: 600 })).challenge;
  return { profile, transactionId: randomUUID(), csr: makeCsr({ subject, challenge: c }) };
}

describe('Jamf verifier', () => {
  it("takes the identity from Jamf's inventory record, not from the CSR", async () => {
    jamf.knobs.computers.add('c02mixedcase');
    jamf.knobs.records.set('c02mixedcase', {
      serialNumber: 'C02MIXEDCASE',
      udid: 'UDID-REAL',
      name: "Alice's MacBook",
    });
    const verifier = jamfVerifier(cfg, handle.db, { env });
    const spoofed = await requestFor([
      ['CN', 'ceo-laptop'],
      ['serialNumber', 'c02mixedcase'],
    ]);
    expect(await verifier.verify(spoofed)).toEqual({
      verdict: 'approved',
      identity: {
        deviceId: 'C02MIXEDCASE',
        vouchedBy: 'jamf',
        attributes: {
          id: 'C02MIXEDCASE',
          serialNumber: 'C02MIXEDCASE',
          udid: 'UDID-REAL',
          name: "Alice's MacBook",
        },
      },
    });
    // A profile that names devices by UDID gets Jamf's UDID as the device id.
    const byUdid = jamfVerifier({ ...cfg, deviceIdFrom: 'udid' }, handle.db, { env });
    expect(await byUdid.verify(await requestFor([['CN', 'c02mixedcase']]))).toMatchObject({
      identity: { deviceId: 'UDID-REAL' },
    });
  });

  it('takes the device serial from the subject serialNumber, else the CN', async () => {
    const withSerial = await parseCsr(
      makeCsr({
        subject: [
          ['CN', 'Alice Mac'],
          ['serialNumber', 'C02X'],
        ],
      }),
    );
    const cnOnly = await parseCsr(
      makeCsr({
        subject: [
          ['CN', 'C02Y'],
          ['O', 'Corp'],
        ],
      }),
    );
    const none = await parseCsr(makeCsr({ subject: [['O', 'Corp']] }));
    expect(withSerial.ok && deviceSerialOf(withSerial.csr)).toBe('C02X');
    expect(cnOnly.ok && deviceSerialOf(cnOnly.csr)).toBe('C02Y');
    expect(none.ok && deviceSerialOf(none.csr)).toBeUndefined();
  });

  it('approves a computer and a mobile device in inventory, with a one-time challenge', async () => {
    const verifier = jamfVerifier(cfg, handle.db, { env });
    expect(await verifier.verify(await requestFor([['CN', 'C02LAPTOP01']]))).toEqual({
      verdict: 'approved',
      identity: {
        deviceId: 'C02LAPTOP01',
        vouchedBy: 'jamf',
        attributes: {
          id: 'C02LAPTOP01',
          serialNumber: 'C02LAPTOP01',
          udid: 'UDID-C02LAPTOP01',
          name: 'Device C02LAPTOP01',
        },
      },
    });
    expect(jamf.callsTo('computers')[0]?.query.get('filter')).toBe('hardware.serialNumber=="C02LAPTOP01"');
    expect(jamf.callsTo('mobileDevices')).toHaveLength(0);

    const phone = await requestFor([
      ['CN', 'iPhone of Bob'],
      ['serialNumber', 'DMPIPHONE01'],
    ]);
    expect(await verifier.verify(phone)).toMatchObject({
      verdict: 'approved',
      identity: { deviceId: 'DMPIPHONE01', vouchedBy: 'jamf', attributes: { udid: 'UDID-DMPIPHONE01' } },
    });
    expect(jamf.callsTo('mobileDevices')[0]?.query.get('filter')).toBe('serialNumber=="DMPIPHONE01"');
    // One token for all calls.
    expect(
      jamf.calls.filter((c) => c.headers.authorization !== jamf.calls[0]?.headers.authorization),
    ).toEqual([]);
  });

  it('rejects a device unknown to Jamf, and a challenge Jamf did not ask for', async () => {
    const verifier = jamfVerifier(cfg, handle.db, { env });
    expect(await verifier.verify(await requestFor([['CN', 'NOPE"123']]))).toEqual({
      verdict: 'rejected',
      reason: 'device NOPE"123 not in Jamf inventory',
    });
    // The quote was escaped, not able to end the filter.
    expect(jamf.callsTo('computers')[0]?.query.get('filter')).toBe('hardware.serialNumber=="NOPE\\"123"');

    jamf.calls.length = 0;
    expect(await verifier.verify(await requestFor([['CN', 'C02LAPTOP01']], 'made-up'))).toEqual({
      verdict: 'rejected',
      reason: 'one-time challenge unknown, used or expired',
    });
    expect(jamf.calls).toEqual([]);
  });

  it('rejects a second use of a challenge; approves the same transaction retried', async () => {
    const verifier = jamfVerifier(cfg, handle.db, { env });
    const first = await requestFor([['CN', 'C02LAPTOP01']]);
    expect(await verifier.verify(first)).toMatchObject({ verdict: 'approved' });
    expect(await verifier.verify(first)).toMatchObject({ verdict: 'approved' });
    expect(await verifier.verify({ ...first, transactionId: randomUUID() })).toMatchObject({
      verdict: 'rejected',
    });
  });

  it('throws on 500, 401, non-JSON and timeout; the retry of the same transaction then succeeds', async () => {
    const verifier = jamfVerifier(cfg, handle.db, { env });
    const cases: Array<
      [Parameters<FakeJamf['knobs']['failNext']>[0], Parameters<FakeJamf['knobs']['failNext']>[1], RegExp]
    > = [
      ['computers', '500', /HTTP 500/],
      ['computers', '401', /HTTP 401/],
      ['mobileDevices', 'non-json', /not JSON/],
      ['computers', 'slow', /no answer within 500 ms/],
      ['token', '500', /Jamf OAuth token: HTTP 500/],
    ];
    for (const [endpoint, mode, message] of cases) {
      // A phone: both searches run, so a failure of either is exercised.
      const req = await requestFor([['CN', 'DMPIPHONE01']]);
      if (endpoint === 'token') jamf.knobs.failNext('computers', '401');
      jamf.knobs.failNext(endpoint, mode);
      await expect(verifier.verify(req)).rejects.toThrow(endpoint === 'token' ? /HTTP 401/ : message);
      if (endpoint === 'token') await expect(verifier.verify(req)).rejects.toThrow(message);
      // The challenge was consumed by this transaction: its retry is approved once Jamf answers.
      expect(await verifier.verify(req)).toMatchObject({ verdict: 'approved' });
    }
  });

  it('throws with a wrong client secret', async () => {
    const verifier = jamfVerifier(cfg, handle.db, { env: { JAMF_SECRET: 'nope' } });
    await expect(verifier.verify(await requestFor([['CN', 'C02LAPTOP01']]))).rejects.toThrow(
      MdmUnavailableError,
    );
  });
});
