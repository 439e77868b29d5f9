import { mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificates } from '../../db/schema.js';
import { openCertRep } from '../support/certrep.js';
import { certsFromPkcs7, serialOf } from '../support/openssl.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { type RecordedExchange, startRecordingProxy } from '../support/recording-proxy.js';
import { scepclientEnroll } from '../support/scep-clients.js';

let pipeline: Pipeline;
let work: string;
const challenge = 'test-challenge';

beforeAll(async () => {
  pipeline = await startPipeline();
  work = mkdtempSync(join(tmpdir(), 'e2e-robust-'));
});
afterAll(async () => {
  await pipeline?.stop();
});

const pkiOperations = (exchanges: RecordedExchange[]) =>
  exchanges.filter((e) => e.path.includes('PKIOperation'));
const enrollmentCount = () =>
  pipeline.client.workflow.count('WorkflowType="enrollment"').then((c) => c.count);

describe('the same PKCSReq sent twice', () => {
  it('answers the same certificate and stores a single row', async () => {
    const proxy = await startRecordingProxy(pipeline.url);
    try {
      const run = await scepclientEnroll({ url: `${proxy.url}/scep`, challenge, cn: 'laptop-replay' });
      expect(run.code, run.output).toBe(0);
      const [request] = pkiOperations(proxy.exchanges);
      expect(request?.method).toBe('POST');

      const replay = await fetch(`${pipeline.url}/scep?operation=PKIOperation`, {
        method: 'POST',
        body: request!.requestBody,
      });
      expect(replay.status).toBe(200);
      // The device's own signer certificate travels in its request; OpenSSL reads it from there.
      const [signer] = await certsFromPkcs7(request!.requestBody, work);
      const delivered = await openCertRep(
        new Uint8Array(await replay.arrayBuffer()),
        { keyPem: readFileSync(join(run.dir, 'key.pem'), 'utf8'), certificatePem: signer! },
        work,
      );
      expect(await serialOf(delivered[0]!, work)).toBe(await serialOf(run.certificatePem!, work));
      const rows = await pipeline.db.db
        .select()
        .from(certificates)
        .where(eq(certificates.deviceId, 'laptop-replay'));
      expect(rows).toHaveLength(1);
    } finally {
      await proxy.close();
    }
  });
});

describe('bad input', () => {
  it('gets a clear HTTP 4xx, starts nothing in Temporal, and the next enrollment still works', async () => {
    const scep = `${pipeline.url}/scep`;
    const before = await enrollmentCount();
    const proxy = await startRecordingProxy(pipeline.url);
    const good = await scepclientEnroll({ url: `${proxy.url}/scep`, challenge, cn: 'laptop-before-garbage' });
    await proxy.close();
    expect(good.code, good.output).toBe(0);
    const valid = pkiOperations(proxy.exchanges)[0]!.requestBody;

    const cases: Array<{ name: string; request: () => Promise<Response>; status: number; message: RegExp }> =
      [
        {
          name: 'random bytes',
          request: () => fetch(`${scep}?operation=PKIOperation`, { method: 'POST', body: randomBytes(512) }),
          status: 400,
          message: /./,
        },
        {
          name: 'empty body',
          request: () => fetch(`${scep}?operation=PKIOperation`, { method: 'POST', body: new Uint8Array() }),
          status: 400,
          message: /empty/,
        },
        {
          name: 'truncated DER of a real request',
          request: () =>
            fetch(`${scep}?operation=PKIOperation`, {
              method: 'POST',
              body: valid.slice(0, valid.length / 2),
            }),
          status: 400,
          message: /./,
        },
        {
          name: 'oversized body',
          request: () =>
            postEarlyAnswered(`${scep}?operation=PKIOperation`, new Uint8Array(256 * 1024).fill(0x30)),
          status: 413,
          message: /exceeds/,
        },
        {
          name: 'invalid base64 in GET',
          request: () => fetch(`${scep}?operation=PKIOperation&message=%%%25not*base64`),
          status: 400,
          message: /base64/,
        },
        {
          name: 'GET without message',
          request: () => fetch(`${scep}?operation=PKIOperation`),
          status: 400,
          message: /missing message/,
        },
        {
          name: 'unknown operation',
          request: () => fetch(`${scep}?operation=DropTables`),
          status: 400,
          message: /unsupported SCEP operation/,
        },
        { name: 'no operation', request: () => fetch(scep), status: 400, message: /missing operation/ },
        {
          name: 'unknown profile',
          request: () => fetch(`${scep}/no-such-profile?operation=GetCACaps`),
          status: 404,
          message: /unknown SCEP profile/,
        },
      ];
    for (const c of cases) {
      const response = await c.request();
      expect(response.status, c.name).toBe(c.status);
      expect(await response.text(), c.name).toMatch(c.message);
    }

    const after = await scepclientEnroll({ url: scep, challenge, cn: 'laptop-after-garbage' });
    expect(after.code, after.output).toBe(0);
    // Exactly the two valid enrollments reached Temporal.
    await expect.poll(enrollmentCount, { timeout: 15_000 }).toBe(before + 2);
  });
});

/**
 * POST that reads the server's answer even when the server answers (and closes) before the whole
 * body is sent, as it should for a body over the limit. fetch() reports that as a network error.
 */
function postEarlyAnswered(url: string, body: Uint8Array): Promise<Response> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(url, { method: 'POST', headers: { 'content-length': body.length } }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 0 })));
    });
    // EPIPE/ECONNRESET after the answer arrived is the server refusing the rest of the body.
    req.on('error', (err) => (answered ? undefined : reject(err)));
    req.end(body);
  });
}

function randomBytes(n: number): Uint8Array {
  return new Uint8Array(Array.from({ length: n }, () => Math.floor(Math.random() * 256)));
}
