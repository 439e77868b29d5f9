import { type ServerType, serve } from '@hono/node-server';
import { type AppDeps, createApp } from './app.js';

export interface RunningServer {
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

/** Serves the app; a slow or stalled client cannot hold a connection forever. */
export function startApiServer(
  deps: AppDeps,
  listen: { host: string; port: number },
): Promise<RunningServer> {
  const app = createApp(deps);
  return new Promise((resolve, reject) => {
    const server: ServerType = serve(
      {
        fetch: app.fetch,
        hostname: listen.host,
        port: listen.port,
        // A client that sends its headers and then trickles the body is cut at requestTimeout (408).
        serverOptions: httpTimeoutsFromEnv(),
      },
      (info) => {
        resolve({
          url: `http://${listen.host}:${info.port}`,
          close: () => new Promise<void>((done) => server.close(() => done())),
        });
      },
    );
    server.once('error', reject);
  });
}
