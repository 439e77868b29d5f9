/** A tiny node:http server on 127.0.0.1:0 for fake third-party services. */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface FakeReply {
  status: number;
  body?: string;
  contentType?: string;
  /** Wait this long before answering (timeouts). */
  delayMs?: number;
  /** Cut the connection instead of answering (a network failure). */
  destroy?: boolean;
}

/** How a fake can be told to misbehave on its next call(s) to an endpoint. */
export type FailureMode = '401' | '500' | 'non-json' | 'slow' | 'drop';

export interface FakeServer {
  url: string;
  close(): Promise<void>;
}

export async function startFakeServer(
  handle: (req: FakeRequest) => FakeReply | Promise<FakeReply>,
): Promise<FakeServer> {
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((req, res) => {
    void serve(req, res, handle);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        // Slow replies would keep close() waiting: cut them.
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function serve(
  req: IncomingMessage,
  res: ServerResponse,
  handle: (req: FakeRequest) => FakeReply | Promise<FakeReply>,
): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const url = new URL(req.url ?? '/', 'http://fake');
  let reply: FakeReply;
  try {
    reply = await handle({
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      body: Buffer.concat(chunks).toString('utf8'),
    });
  } catch (err) {
    reply = { status: 500, body: `fake crashed: ${(err as Error).message}`, contentType: 'text/plain' };
  }
  if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
  if (res.destroyed) return;
  if (reply.destroy) {
    req.socket.destroy();
    return;
  }
  res.writeHead(reply.status, { 'content-type': reply.contentType ?? 'application/json' });
  res.end(reply.body ?? '');
}

export const json = (status: number, value: unknown): FakeReply => ({ status, body: JSON.stringify(value) });

/** The misbehaviour for a failure mode. */
export function failureReply(mode: FailureMode, slowMs: number): FakeReply {
  switch (mode) {
    case '401':
      return json(401, { error: 'invalid_token' });
    case '500':
      return json(500, { error: 'internal error' });
    case 'non-json':
      return { status: 200, body: '<html><body>Service Unavailable</body></html>', contentType: 'text/html' };
    case 'slow':
      return { ...json(200, {}), delayMs: slowMs };
    case 'drop':
      return { status: 0, destroy: true };
  }
}

/** Per-endpoint queues of failures to inject on the next calls. */
export class FailureQueue<E extends string> {
  private readonly queues = new Map<E, FailureMode[]>();
  add(endpoint: E, mode: FailureMode, times = 1): void {
    const queue = this.queues.get(endpoint) ?? [];
    for (let i = 0; i < times; i++) queue.push(mode);
    this.queues.set(endpoint, queue);
  }
  take(endpoint: E): FailureMode | undefined {
    return this.queues.get(endpoint)?.shift();
  }
  clear(): void {
    this.queues.clear();
  }
}

export function bearerOf(req: FakeRequest): string | undefined {
  const match = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
  return match?.[1];
}
