/**
 * A fake Jamf Pro API (contracts.md, Jamf Pro): OAuth client credentials, computer and mobile-device
 * inventory searches by serial number with Jamf's RSQL filter syntax.
 */
import { randomUUID } from 'node:crypto';
import {
  bearerOf,
  type FailureMode,
  FailureQueue,
  type FakeReply,
  type FakeRequest,
  failureReply,
  json,
  startFakeServer,
} from './server.js';

export type JamfEndpoint = 'token' | 'computers' | 'mobileDevices';

export interface FakeJamf {
  url: string;
  close(): Promise<void>;
  calls: Array<{
    endpoint: JamfEndpoint;
    query: URLSearchParams;
    headers: FakeRequest['headers'];
    status: number;
  }>;
  callsTo(endpoint: JamfEndpoint): FakeJamf['calls'];
  knobs: {
    /** Serial numbers in inventory. */
    computers: Set<string>;
    mobileDevices: Set<string>;
    /**
     * What Jamf's record says about a device, by the serial searched (Jamf's own spelling of the
     * serial, its UDID and name). Unlisted: the record echoes the serial and has a made-up UDID.
     */
    records: Map<string, { serialNumber?: string; udid?: string; name?: string }>;
    tokenLifetimeSeconds: number;
    slowMs: number;
    failNext(endpoint: JamfEndpoint, mode: FailureMode, times?: number): void;
  };
}

/** hardware.serialNumber=="X" / serialNumber=="X" with \" and \\ escapes. */
const FILTER = /^(hardware\.serialNumber|serialNumber)=="((?:[^"\\]|\\.)*)"$/;

export async function startFakeJamf(opts: { clientId: string; clientSecret: string }): Promise<FakeJamf> {
  const failures = new FailureQueue<JamfEndpoint>();
  const validTokens = new Set<string>();
  const calls: FakeJamf['calls'] = [];
  const knobs: FakeJamf['knobs'] = {
    computers: new Set(),
    mobileDevices: new Set(),
    records: new Map(),
    tokenLifetimeSeconds: 1200,
    slowMs: 2000,
    failNext: (endpoint, mode, times) => failures.add(endpoint, mode, times),
  };
  const record = (endpoint: JamfEndpoint, req: FakeRequest, reply: FakeReply) => {
    calls.push({ endpoint, query: req.query, headers: req.headers, status: reply.status });
    return reply;
  };

  const token = (req: FakeRequest): FakeReply => {
    const mode = failures.take('token');
    if (mode) return failureReply(mode, knobs.slowMs);
    const form = new URLSearchParams(req.body);
    if (form.get('grant_type') !== 'client_credentials')
      return json(400, { error: 'unsupported_grant_type' });
    if (form.get('client_id') !== opts.clientId || form.get('client_secret') !== opts.clientSecret)
      return json(401, { error: 'invalid_client' });
    const accessToken = `jamf-${randomUUID()}`;
    validTokens.add(accessToken);
    return json(200, {
      access_token: accessToken,
      scope: 'api-role:device-pki',
      token_type: 'Bearer',
      expires_in: knobs.tokenLifetimeSeconds,
    });
  };

  const search = (endpoint: 'computers' | 'mobileDevices', field: string, inventory: Set<string>) => {
    return (req: FakeRequest): FakeReply => {
      const mode = failures.take(endpoint);
      if (mode === '401') validTokens.clear();
      if (mode) return failureReply(mode, knobs.slowMs);
      const presented = bearerOf(req);
      if (!presented || !validTokens.has(presented)) return json(401, { httpStatus: 401, errors: [] });
      const filter = FILTER.exec(req.query.get('filter') ?? '');
      if (!filter || filter[1] !== field)
        return json(400, { httpStatus: 400, errors: [{ code: 'INVALID_FILTER', field: 'filter' }] });
      const serial = filter[2]!.replace(/\\(.)/g, '$1');
      const found = inventory.has(serial);
      const record = {
        serialNumber: serial,
        udid: `UDID-${serial}`,
        name: `Device ${serial}`,
        ...knobs.records.get(serial),
      };
      // The shapes of Jamf Pro's computers-inventory (GENERAL, HARDWARE) and mobile-devices/detail.
      const results = found
        ? [
            endpoint === 'computers'
              ? {
                  id: '1',
                  udid: record.udid,
                  general: { name: record.name },
                  hardware: { serialNumber: record.serialNumber },
                }
              : {
                  mobileDeviceId: '1',
                  general: { udid: record.udid, displayName: record.name },
                  hardware: { serialNumber: record.serialNumber },
                },
          ]
        : [];
      return json(200, { totalCount: results.length, results });
    };
  };
  const computers = search('computers', 'hardware.serialNumber', knobs.computers);
  const mobiles = search('mobileDevices', 'serialNumber', knobs.mobileDevices);

  const server = await startFakeServer((req) => {
    if (req.method === 'POST' && req.path === '/api/oauth/token') return token(req);
    if (req.method === 'GET' && req.path === '/api/v1/computers-inventory') {
      const sections = req.query.getAll('section');
      if (!sections.includes('GENERAL') || !sections.includes('HARDWARE'))
        return record('computers', req, json(400, { error: 'section=GENERAL&section=HARDWARE expected' }));
      return record('computers', req, computers(req));
    }
    if (req.method === 'GET' && req.path === '/api/v2/mobile-devices/detail')
      return record('mobileDevices', req, mobiles(req));
    return json(404, {
      httpStatus: 404,
      errors: [{ code: 'NOT_FOUND', description: `${req.method} ${req.path}` }],
    });
  });
  return {
    url: server.url,
    close: server.close,
    calls,
    callsTo: (endpoint) => calls.filter((c) => c.endpoint === endpoint),
    knobs,
  };
}
