import { type ServerType, serve } from '@hono/node-server';
import { type AppDeps, createApp } from './app.js';

export interface RunningServer {
  url: string;
  close(): Promise<void>;
}

/** Serves the app; a slow or stalled client cannot hold a connection forever. */
export function startApiServer(
  deps: AppDeps,
  listen: { host: string; port: number },
): Promise<RunningServer> {
  const app = createApp(deps);
  return new Promise((resolve, reject) => {
    const server: ServerType = serve(
      { fetch: app.fetch, hostname: listen.host, port: listen.port },
      (info) => {
        resolve({
          url: `http://${listen.host}:${info.port}`,
          close: () => new Promise<void>((done) => server.close(() => done())),
        });
      },
    );
    if ('requestTimeout' in server) {
      server.requestTimeout = 30_000;
      server.headersTimeout = 10_000;
    }
    server.once('error', reject);
  });
}
