/**
 * Limits of the HTTP layer against the real product (startPipeline): the per-client-IP rate limit on
 * the SCEP paths (429 + Retry-After), the body cap (413), and the slow-client timeouts (a client that
 * sends its headers and then trickles the body, or never finishes its headers, is cut).
 *
 * Limits are small here (set in the environment before the pipeline starts). Each scenario uses its
 * own loopback source address (127.0.0.x), so each has its own bucket.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Pipeline, startPipeline } from '../support/pipeline.js';

const ENV = {
  SCEP_RATE_PER_MINUTE: '60',
  SCEP_RATE_BURST: '5',
  API_REQUEST_TIMEOUT_MS: '1500',
  API_HEADERS_TIMEOUT_MS: '1000',
};
const saved: Record<string, string | undefined> = {};
let pipeline: Pipeline;

beforeAll(async () => {
  for (const [k, v] of Object.entries(ENV)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  pipeline = await startPipeline();
});
afterAll(async () => {
  await pipeline?.stop();
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** An HTTP request from a chosen loopback source address (fetch cannot pick one). */
function send(
  path: string,
  from: string,
  opts: { method?: string; body?: Uint8Array } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(
      `${pipeline.url}${path}`,
      {
        method: opts.method ?? 'GET',
        localAddress: from,
        agent: false,
        headers: opts.body ? { 'content-length': opts.body.length } : {},
      },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    // The server may answer (413) and close before the whole body is written.
    req.on('error', (err) => (answered ? undefined : reject(err)));
    req.end(opts.body);
  });
}

describe('per-client-IP rate limit on the SCEP paths', () => {
  it('allows the burst, then answers 429 with Retry-After and a message, on /scep and the NDES path', async () => {
    const from = '127.0.0.2';
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await send('/scep?operation=GetCACaps', from)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200]);

    const limited = await send('/scep?operation=GetCACaps', from);
    expect(limited.status).toBe(429);
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(2);
    expect(limited.body).toMatch(
      /too many SCEP requests from 127\.0\.0\.2.*60\/minute.*burst 5.*retry in \d+ s/,
    );

    // Same client, other SCEP path and method: same bucket.
    expect((await send('/cgi-bin/pkiclient.exe?operation=GetCACert', from)).status).toBe(429);
    expect(
      (await send('/scep?operation=PKIOperation', from, { method: 'POST', body: new Uint8Array(10) })).status,
    ).toBe(429);
    // Another client is not affected; nor is the health probe.
    expect((await send('/cgi-bin/pkiclient.exe?operation=GetCACaps', '127.0.0.4')).status).toBe(200);
    expect((await send('/healthz', from)).status).toBe(200);

    // After Retry-After the client gets a token again (60/minute: one per second).
    await new Promise((r) => setTimeout(r, retryAfter * 1000 + 50));
    expect((await send('/scep?operation=GetCACaps', from)).status).toBe(200);
    expect((await send('/scep?operation=GetCACaps', from)).status).toBe(429);
  });
});

describe('request size and time limits', () => {
  const from = '127.0.0.3';

  it('an oversized body is refused with 413 before it is read', async () => {
    const answer = await send('/scep?operation=PKIOperation', from, {
      method: 'POST',
      body: new Uint8Array(256 * 1024).fill(0x30),
    });
    expect(answer.status).toBe(413);
    expect(answer.body).toMatch(/exceeds/);
  });

  it('headers then a trickled body: the connection is cut at the request timeout (1.5 s)', async () => {
    const result = await rawExchange(from, (socket) => {
      socket.write(
        'POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: test\r\nContent-Length: 4000\r\n\r\n',
      );
      // One byte every 100 ms: 4000 bytes would take 400 s.
      return setInterval(() => socket.write('0'), 100);
    });
    expect(result.elapsedMs).toBeGreaterThanOrEqual(1400);
    expect(result.elapsedMs).toBeLessThan(4000);
    // Node answers 408 when it can; either way the socket is closed.
    console.log(
      `[scep-limits] trickled body: cut after ${Math.round(result.elapsedMs)} ms, answer ${JSON.stringify(result.response.split('\r\n')[0])}`,
    );
    expect(result.response).toMatch(/^HTTP\/1\.1 408/);
  });

  it('headers that never finish: cut at the headers timeout (1 s)', async () => {
    const result = await rawExchange(from, (socket) => {
      socket.write('GET /scep?operation=GetCACaps HTTP/1.1\r\nHost: test\r\n');
      return setInterval(() => socket.write('X-Slow: a\r\n'), 100);
    });
    expect(result.elapsedMs).toBeGreaterThanOrEqual(900);
    expect(result.elapsedMs).toBeLessThan(3500);
    console.log(
      `[scep-limits] slow headers: cut after ${Math.round(result.elapsedMs)} ms, answer ${JSON.stringify(result.response.split('\r\n')[0])}`,
    );
    expect(result.response).toMatch(/^HTTP\/1\.1 408/);
  });
});

/** Opens a raw TCP connection, lets `drive` write slowly, and waits (max 10 s) for the server to close. */
function rawExchange(
  from: string,
  drive: (socket: ReturnType<typeof connect>) => NodeJS.Timeout,
): Promise<{ elapsedMs: number; response: string }> {
  const { hostname, port } = new URL(pipeline.url);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ host: hostname, port: Number(port), localAddress: from });
    let response = '';
    let timer: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => {
      socket.destroy();
      reject(new Error('server kept the slow connection open for 10 s'));
    }, 10_000);
    socket.on('connect', () => {
      timer = drive(socket);
    });
    socket.on('data', (d: Buffer) => {
      response += d.toString();
    });
    // Writes after the server closed fail with EPIPE/ECONNRESET: that is the cut we are waiting for.
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(guard);
      resolve({ elapsedMs: performance.now() - started, response });
    });
  });
}
