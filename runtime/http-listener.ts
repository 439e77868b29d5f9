/**
 * One way to put a Hono app on a port (plain HTTP, or HTTPS with `tls`), with the time limits every
 * listener of the product keeps: the API's public and operator listeners and a worker's health port.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type ServerType, serve } from '@hono/node-server';
import type { Hono } from 'hono';

export interface Listener {
  url: string;
  close(): Promise<void>;
}

/**
 * Time limits of the HTTP server, from API_HEADERS_TIMEOUT_MS (default 10 s: all headers) and
 * API_REQUEST_TIMEOUT_MS (default 30 s: the whole request, body included). Node enforces them on a
 * timer (connectionsCheckingInterval, default 30 s), so that timer follows the smaller limit.
 */
export function httpTimeoutsFromEnv(env: NodeJS.ProcessEnv = process.env) {
  const ms = (name: string, fallback: number) => {
    const value = Number(env[name] || fallback);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number of ms`);
    return value;
  };
  const requestTimeout = ms('API_REQUEST_TIMEOUT_MS', 30_000);
  // Node requires headersTimeout <= requestTimeout.
  const headersTimeout = Math.min(ms('API_HEADERS_TIMEOUT_MS', 10_000), requestTimeout);
  const connectionsCheckingInterval = Math.max(50, Math.min(1_000, Math.floor(headersTimeout / 4)));
  return { requestTimeout, headersTimeout, connectionsCheckingInterval };
}

/** A slow or stalled client cannot hold a connection forever (408 past the request timeout). */
export function listenOn(
  app: Hono,
  listen: { host: string; port: number },
  tls?: Record<string, unknown>,
): Promise<Listener> {
  return new Promise((resolve, reject) => {
    const server: ServerType = serve(
      {
        fetch: app.fetch,
        hostname: listen.host,
        port: listen.port,
        ...(tls ? { createServer: createHttpsServer } : {}),
        serverOptions: { ...httpTimeoutsFromEnv(), ...(tls ?? {}) },
      },
      (info) => {
        resolve({
          url: `${tls ? 'https' : 'http'}://${listen.host}:${info.port}`,
          close: () => closeAfterAnswers(server, inFlight),
        });
      },
    );
    server.once('error', reject);
    // Responses not finished yet: on close, each is the last of its connection.
    const inFlight = new Set<ServerResponse>();
    server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
      if (!server.listening) res.setHeader('Connection', 'close');
      inFlight.add(res);
      res.once('close', () => inFlight.delete(res));
    });
  });
}

/**
 * Stops accepting, answers the requests in flight, and closes every connection once its answer is
 * out. Node's own close() only ends the keep-alive connections idle at that instant: a client that
 * sends its next request as soon as the last is answered (a load balancer probing /readyz) kept a
 * replica open forever after SIGTERM. Each answer still to come now says `Connection: close`, and so
 * does every request such a connection brings meanwhile (`server.listening` is false from here).
 */
function closeAfterAnswers(server: ServerType, inFlight: Set<ServerResponse>): Promise<void> {
  return new Promise<void>((done) => {
    server.close(() => done());
    for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
  });
}
