import { createServer, type IncomingMessage, type Server } from 'node:http';

export interface RecordedExchange {
  method: string;
  path: string;
  requestBody: Uint8Array;
  status: number;
  responseBody: Uint8Array;
}

/**
 * Sits between a real SCEP client and the API and keeps every exchange, so a test can replay the
 * exact bytes a real client sent.
 */
export async function startRecordingProxy(target: string): Promise<{
  url: string;
  exchanges: RecordedExchange[];
  close(): Promise<void>;
}> {
  const exchanges: RecordedExchange[] = [];
  const server: Server = createServer(async (req, res) => {
    const requestBody = await readBody(req);
    const response = await fetch(`${target}${req.url}`, {
      method: req.method,
      headers: { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' },
      body: req.method === 'POST' ? requestBody : undefined,
    });
    const responseBody = new Uint8Array(await response.arrayBuffer());
    exchanges.push({
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      requestBody,
      status: response.status,
      responseBody,
    });
    res.writeHead(response.status, {
      'content-type': response.headers.get('content-type') ?? 'application/octet-stream',
    });
    res.end(responseBody);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('proxy has no address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    exchanges,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function readBody(req: IncomingMessage): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(new Uint8Array(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}
