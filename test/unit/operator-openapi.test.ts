import { describe, expect, it } from 'vitest';
import { offlineOperatorApp } from '../support/operator-app.js';

/**
 * GET /operator/openapi.json describes exactly the routes the operator app registers: a route added
 * without its documentation (or documentation left behind by a removed route) fails here, named.
 * In-process (`app.request`): neither this route nor the route table touches Temporal or the
 * database, so the app is built without them.
 */
const TOKEN = 'openapi-test-token';
const app = offlineOperatorApp(TOKEN);

type Document = {
  openapi: string;
  paths: Record<
    string,
    Record<string, { parameters?: Array<{ name: string; in: string }>; requestBody?: Json }>
  >;
};
type Json = Record<string, unknown>;

async function fetchDocument(): Promise<Document> {
  const response = await app.request('/operator/openapi.json', {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  expect(response.status).toBe(200);
  return (await response.json()) as Document;
}

/**
 * Hono's path as OpenAPI path templates: `:name` and `:name{regex}` become `{name}`, and a parameter
 * that is a list of literals (`:action{approve|retry|reject}`) one path per literal.
 */
function openApiPaths(honoPath: string): string[] {
  let paths = [''];
  for (const segment of honoPath.split('/').slice(1)) {
    const param = /^:(\w+)(?:\{(.+)\})?$/.exec(segment);
    const literals = param?.[2] && /^[\w-]+(\|[\w-]+)*$/.test(param[2]) ? param[2].split('|') : undefined;
    const choices = literals ?? [param ? `{${param[1]}}` : segment];
    paths = paths.flatMap((p) => choices.map((c) => `${p}/${c}`));
  }
  return paths;
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

describe('the operator API OpenAPI document', () => {
  it('needs operator credentials like every operator route', async () => {
    expect((await app.request('/operator/openapi.json')).status).toBe(401);
    const wrong = await app.request('/operator/openapi.json', { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
  });

  it('lists every route the operator app registers, and no other', async () => {
    const document = await fetchDocument();
    expect(document.openapi).toBe('3.1.0');
    const registered = new Set(
      app.routes
        .filter((r) => r.method !== 'ALL' && r.path.startsWith('/operator/'))
        .flatMap((r) => openApiPaths(r.path).map((p) => `${r.method.toUpperCase()} ${p}`)),
    );
    const documented = new Set(
      Object.entries(document.paths).flatMap(([path, item]) =>
        Object.keys(item)
          .filter((m) => HTTP_METHODS.includes(m))
          .map((m) => `${m.toUpperCase()} ${path}`),
      ),
    );
    const undocumented = [...registered].filter((r) => !documented.has(r));
    const stale = [...documented].filter((d) => !registered.has(d));
    expect(undocumented, `routes missing from api/operator/openapi.ts: ${undocumented.join(', ')}`).toEqual(
      [],
    );
    expect(stale, `documented routes the operator app does not register: ${stale.join(', ')}`).toEqual([]);
    // The check has something to check: the routes of today's operator API are all there.
    expect(registered).toContain('POST /operator/enrollments/{workflowId}/reject');
    expect(registered).toContain('GET /operator/devices/{profile}/{deviceId}');
    expect(registered.size).toBeGreaterThanOrEqual(13);
  });

  it('declares every path parameter, and takes request bodies from the schemas the routes parse with', async () => {
    const document = await fetchDocument();
    for (const [path, item] of Object.entries(document.paths)) {
      const templated = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      for (const [method, op] of Object.entries(item)) {
        const declared = (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name);
        expect(declared.sort(), `${method.toUpperCase()} ${path}`).toEqual([...templated].sort());
      }
    }
    const reject = document.paths['/operator/enrollments/{workflowId}/reject']!.post!.requestBody as {
      required: boolean;
      content: { 'application/json': { schema: { required: string[]; properties: Json } } };
    };
    expect(reject.required).toBe(true);
    expect(reject.content['application/json'].schema.required).toEqual(['reason']);
    const revoke = document.paths['/operator/devices/{profile}/{deviceId}/revoke']!.post!.requestBody as {
      content: { 'application/json': { schema: { properties: { reason: { enum: string[] } } } } };
    };
    expect(revoke.content['application/json'].schema.properties.reason.enum).toContain('keyCompromise');
    const list = document.paths['/operator/enrollments']!.get!.parameters as Array<{
      name: string;
      in: string;
      required: boolean;
      schema: { enum?: string[] };
    }>;
    expect(list.find((p) => p.name === 'status')).toMatchObject({
      in: 'query',
      required: true,
      schema: { enum: ['escalated', 'awaiting-approval', 'failed'] },
    });
  });
});

describe('POST /operator/keys/compromised takes only what it documents', () => {
  it('refuses a field it does not know (a typo must not pass as a finding)', async () => {
    const response = await app.request('/operator/keys/compromised', {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ token: 't', label: 'k', reason: 'stolen' }),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(/reason/);
  });
});
