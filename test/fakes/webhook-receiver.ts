/**
 * A webhook receiver like an integration would run: checks X-PKI-Signature with the product's own
 * verifier, can refuse the first N deliveries (500) to exercise retries, records everything.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyWebhookSignature } from '../../activities/notify/webhook.js';

export interface ReceivedDelivery {
  headers: Record<string, string | string[] | undefined>;
  body: string;
  verified: boolean;
  status: number;
}

export interface WebhookReceiver {
  url: string;
  deliveries: ReceivedDelivery[];
  /** Deliveries still to be refused with 500 before acknowledging. */
  failuresLeft: number;
  /** How long it takes to answer (a slow receiver). */
  delayMs: number;
  close(): Promise<void>;
}

export async function startWebhookReceiver(opts: {
  secret: string;
  failTimes?: number;
  toleranceSeconds?: number;
  /** Listen here (e.g. where a receiver that was down comes back); default any free port. */
  port?: number;
  delayMs?: number;
}): Promise<WebhookReceiver> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const verified = verifyWebhookSignature(opts.secret, req.headers, body, opts.toleranceSeconds ?? 300);
      let status = 204;
      if (!verified) status = 401;
      else if (receiver.failuresLeft > 0) {
        receiver.failuresLeft--;
        status = 500;
      }
      const answer = () => {
        receiver.deliveries.push({ headers: req.headers, body, verified, status });
        res.writeHead(status).end();
      };
      if (receiver.delayMs > 0) setTimeout(answer, receiver.delayMs);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  const receiver: WebhookReceiver = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/pki`,
    deliveries: [],
    failuresLeft: opts.failTimes ?? 0,
    delayMs: opts.delayMs ?? 0,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return receiver;
}
