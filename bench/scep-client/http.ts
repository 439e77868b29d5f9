/**
 * HTTP for the SCEP client: node:http(s) over keep-alive agents, so a load generator reuses its
 * connections the way a fleet behind a proxy would, instead of paying a TCP handshake per request.
 */
import http from 'node:http';
import https from 'node:https';

export interface HttpAnswer {
  status: number;
  contentType: string;
  body: Uint8Array;
}

export class KeepAliveHttp {
  private readonly agents: { http: http.Agent; https: https.Agent };

  constructor(
    maxSockets = 256,
    private readonly timeoutMs = 60_000,
  ) {
    this.agents = {
      http: new http.Agent({ keepAlive: true, maxSockets }),
      https: new https.Agent({ keepAlive: true, maxSockets }),
    };
  }

  get(url: URL): Promise<HttpAnswer> {
    return this.request(url, 'GET');
  }

  post(url: URL, body: Uint8Array, contentType: string): Promise<HttpAnswer> {
    return this.request(url, 'POST', body, contentType);
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private request(url: URL, method: string, body?: Uint8Array, contentType?: string): Promise<HttpAnswer> {
    const secure = url.protocol === 'https:';
    const headers: Record<string, string | number> = {};
    if (body) {
      headers['content-type'] = contentType ?? 'application/octet-stream';
      headers['content-length'] = body.length;
    }
    return new Promise((resolve, reject) => {
      const req = (secure ? https : http).request(
        url,
        { method, headers, agent: secure ? this.agents.https : this.agents.http, timeout: this.timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', reject);
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              contentType: String(res.headers['content-type'] ?? ''),
              body: new Uint8Array(Buffer.concat(chunks)),
            }),
          );
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }
}
