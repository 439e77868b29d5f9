import { createServer as createHttpsServer } from 'node:https';
import { type ServerType, serve } from '@hono/node-server';
import type { Hono } from 'hono';
import type { OperatorTls } from '../runtime/operator-tls.js';
import { type AppDeps, createOperatorApp, createPublicApp } from './app.js';

export interface RunningServer {
  /** The public listener (SCEP, CRL, OCSP). */
  url: string;
  /** The operators' HTTPS listener, when one was asked for. */
  operatorUrl?: string;
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

/**
 * Serves the public app over HTTP and, with `operator`, the operators' app over HTTPS. A client
 * certificate is asked for (and the operators' CA named in the CertificateRequest) but not required
 * by TLS: MDM webhooks have none; the operator routes decide (OPERATOR_AUTH).
 */
export async function startApiServer(
  deps: AppDeps,
  listen: { host: string; port: number },
  operator?: { host: string; port: number; tls: OperatorTls },
): Promise<RunningServer> {
  const publicServer = await listenOn(createPublicApp(deps), listen);
  let operatorServer: { url: string; close(): Promise<void> } | undefined;
  try {
    if (operator)
      operatorServer = await listenOn(createOperatorApp(deps), operator, {
        cert: operator.tls.cert,
        key: operator.tls.key,
        ca: operator.tls.clientCas,
        requestCert: true,
        rejectUnauthorized: false,
        minVersion: 'TLSv1.2',
      });
  } catch (err) {
    await publicServer.close();
    throw err;
  }
  return {
    url: publicServer.url,
    ...(operatorServer ? { operatorUrl: operatorServer.url } : {}),
    async close() {
      await Promise.all([publicServer.close(), operatorServer?.close()]);
    },
  };
}

/** A slow or stalled client cannot hold a connection forever (408 past the request timeout). */
function listenOn(
  app: Hono,
  listen: { host: string; port: number },
  tls?: Record<string, unknown>,
): Promise<{ url: string; close(): Promise<void> }> {
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
          // Node closes idle keep-alive connections; requests in flight are answered first.
          close: () => new Promise<void>((done) => server.close(() => done())),
        });
      },
    );
    server.once('error', reject);
  });
}
