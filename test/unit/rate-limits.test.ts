import type { Client } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { rateLimitFromEnv } from '../../api/http/rate-limit.js';
import { mdmRoutes } from '../../api/mdm/index.js';
import { operatorRoutes } from '../../api/operator/index.js';
import { revocationRoutes } from '../../api/revocation/routes.js';
import type { RevocationService } from '../../api/revocation/service.js';
import type { PkiConfig } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';

/**
 * Every surface a client can hammer has its own limit: OCSP, the operator API, the MDM webhooks (as
 * SCEP, test/e2e/scep-limits.test.ts). Over it: 429 with Retry-After, before any work (the requests
 * here would otherwise need a database, a token or Temporal).
 */
const tight = { perMinute: 6, burst: 3 };
const config = { profiles: [] } as unknown as PkiConfig;
const deps = {
  config,
  db: undefined as unknown as Database,
  temporal: undefined as unknown as Client,
  rateLimit: tight,
};

async function hammer(request: () => Promise<Response> | Response, times = 5) {
  const statuses: number[] = [];
  let last: Response | undefined;
  for (let i = 0; i < times; i++) {
    last = await request();
    statuses.push(last.status);
  }
  return { statuses, last: last! };
}

describe('rate limits per surface', () => {
  it('the operator API: 429 after the burst, before authentication is even looked at', async () => {
    const app = operatorRoutes({ ...deps, env: { OPERATOR_TOKEN: 'secret' } });
    const { statuses, last } = await hammer(() =>
      app.request('/operator/devices/p/d', { headers: { authorization: 'Bearer wrong' } }),
    );
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    expect(last.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(((await last.json()) as { error: string }).error).toMatch(
      /too many OPERATOR requests .* limit 6\/minute \(burst 3\)/,
    );
  });

  it('the MDM webhooks and Jamf: 429 after the burst', async () => {
    const app = mdmRoutes(deps);
    const { statuses } = await hammer(() =>
      app.request('/mdm/nope/device-removed', { method: 'POST', body: '{}' }),
    );
    expect(statuses).toEqual([404, 404, 404, 429, 429]);
    // Jamf shares the integrations' bucket: already spent.
    const jamf = await app.request('/jamf/nope/scep-challenge', { method: 'POST', body: '{}' });
    expect(jamf.status).toBe(429);
  });

  it('OCSP (GET and POST share the bucket): 429 after the burst', async () => {
    const service = {
      answerOcsp: async () => new Uint8Array([0x30, 0x03, 0x0a, 0x01, 0x01]),
    } as unknown as RevocationService;
    const app = revocationRoutes(service, tight);
    const statuses = [
      (await app.request('/ocsp', { method: 'POST', body: new Uint8Array([0x30, 0x00]) })).status,
      (await app.request('/ocsp/MAA=')).status,
      (await app.request('/ocsp', { method: 'POST', body: new Uint8Array([0x30, 0x00]) })).status,
      (await app.request('/ocsp/MAA=')).status,
    ];
    expect(statuses).toEqual([200, 200, 200, 429]);
  });

  it('reads each surface from its own variables, 0 turning it off', () => {
    const env = { OCSP_RATE_PER_MINUTE: '0', OPERATOR_RATE_PER_MINUTE: '30', OPERATOR_RATE_BURST: '5' };
    expect(rateLimitFromEnv('ocsp', env).perMinute).toBe(0);
    expect(rateLimitFromEnv('operator', env)).toEqual({ perMinute: 30, burst: 5 });
    expect(rateLimitFromEnv('mdm', env)).toEqual({ perMinute: 600, burst: 120 });
    expect(() => rateLimitFromEnv('scep', { SCEP_RATE_PER_MINUTE: '-1' })).toThrow(/SCEP_RATE_PER_MINUTE/);
  });
});
