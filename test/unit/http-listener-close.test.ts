import { Agent, get, type IncomingHttpHeaders } from 'node:http';
import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { type Listener, listenOn } from '../../runtime/http-listener.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function request(url: string, agent: Agent): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    get(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    }).on('error', reject);
  });
}

let agent: Agent | undefined;
afterEach(() => agent?.destroy());

describe('closing a listener (runtime/http-listener.ts)', () => {
  // A load balancer probing /readyz over one keep-alive connection, its next request as soon as the
  // last is answered: the connection is never idle when close() looks, and Node closes only idle ones.
  // A replica on SIGTERM then never stopped (seen in test/cluster: api-2 alive 30 s after its answer).
  it('close() finishes while a client keeps a keep-alive connection busy; that client is told Connection: close', async () => {
    let listener: Listener | undefined;
    let served = 0;
    let closing: Promise<string> | undefined;
    const app = new Hono().get('/readyz', async (c) => {
      served++;
      // SIGTERM arrives while a probe is in flight.
      if (served === 5 && listener)
        closing = Promise.race([
          listener.close().then(() => 'closed'),
          sleep(5_000).then(() => 'still open'),
        ]);
      await sleep(10);
      return c.json({ ready: false }, 503);
    });
    listener = await listenOn(app, { host: '127.0.0.1', port: 0 });
    agent = new Agent({ keepAlive: true, maxSockets: 1 });

    const answers: Array<{ served: number; connection: string | undefined }> = [];
    let refused: NodeJS.ErrnoException | undefined;
    while (!refused && answers.length < 1_000) {
      try {
        const { headers } = await request(`${listener.url}/readyz`, agent);
        answers.push({ served, connection: headers.connection });
      } catch (err) {
        refused = err as NodeJS.ErrnoException;
      }
    }
    expect(closing).toBeDefined();
    expect(await closing).toBe('closed');
    // The probe in flight was answered, and told to go: its next attempt finds the port closed.
    const afterClose = answers.filter((a) => a.served >= 5);
    expect(afterClose.length).toBeGreaterThan(0);
    expect(afterClose.at(-1)?.connection).toBe('close');
    expect(refused?.code).toBe('ECONNREFUSED');
  });
});
