/**
 * GlobalSign Atlas HVCA over mutual TLS plus a bearer token (shared/reference/contracts.md).
 * node:https because fetch cannot present a client certificate without undici's Agent.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { secretFromEnv } from '../../../config/load.js';
import type { CaConfig } from '../../../config/profile-types.js';

export type AtlasConfig = Extract<CaConfig, { type: 'globalsign-atlas' }>;

/** Atlas refused the request on policy grounds (422): retrying the same request cannot succeed. */
export class AtlasPolicyError extends Error {
  override readonly name = 'AtlasPolicyError';
  constructor(readonly description: string) {
    super(description);
  }
}

/** Atlas could not be reached or did not answer usefully: worth retrying later. */
export class AtlasUnavailableError extends Error {
  override readonly name = 'AtlasUnavailableError';
  constructor(
    message: string,
    readonly status: number | undefined,
    /**
     * False when Atlas certainly did not act on the request (refused before processing: 4xx, 429,
     * 503, or no TLS connection was ever made). Callers of non-idempotent requests need to know.
     */
    readonly mayHaveBeenProcessed: boolean,
  ) {
    super(message);
  }
}

export type AtlasCertificateLookup =
  | { kind: 'ready'; certificatePem: string; status: string }
  | { kind: 'pending' }
  | { kind: 'not-found' };

export interface AtlasCertificateRequest {
  validity: { not_before: number; not_after: number };
  subject_dn: Record<string, unknown>;
  san?: Record<string, string[]>;
  extended_key_usages?: string[];
  key_usages?: Record<string, boolean>;
  public_key: string;
}

export interface AtlasClientOptions {
  baseUrl: string;
  apiKey: string;
  apiSecret: string;
  clientCert: string | Buffer;
  clientKey: string | Buffer;
  /** Trust anchors for the server; the system store when absent. */
  serverCa?: string | Buffer;
  timeoutMs?: number;
}

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

const DEFAULT_TIMEOUT_MS = 15_000;

export class AtlasClient {
  private readonly agent: Agent;
  private readonly base: string;
  private token: string | undefined;
  private loggingIn: Promise<string> | undefined;

  constructor(private readonly opts: AtlasClientOptions) {
    this.base = opts.baseUrl.replace(/\/+$/, '');
    // No keep-alive: every request gets a fresh TLS connection, so "no connection was made" is a
    // reliable signal that a POST did not reach Atlas.
    this.agent = new Agent({
      cert: opts.clientCert,
      key: opts.clientKey,
      ...(opts.serverCa ? { ca: opts.serverCa } : {}),
      keepAlive: false,
    });
  }

  /** POST /certificates; returns the serial Atlas assigned (from the Location header). */
  async submit(body: AtlasCertificateRequest): Promise<string> {
    const res = await this.authorized('POST', '/certificates', body);
    if (res.status !== 201) throw unexpected('POST /certificates', res);
    const location = header(res, 'location');
    const serial = location?.split('?')[0]?.split('/').filter(Boolean).pop();
    if (!serial) {
      // Created, but we cannot tell which certificate: do not let a retry create another one.
      throw new AtlasUnavailableError('Atlas answered 201 without a usable Location header', 201, true);
    }
    return serial;
  }

  async get(serial: string): Promise<AtlasCertificateLookup> {
    const res = await this.authorized('GET', `/certificates/${encodeURIComponent(serial)}`);
    if (res.status === 202) return { kind: 'pending' };
    if (res.status === 404) return { kind: 'not-found' };
    if (res.status !== 200) throw unexpected('GET /certificates/{serial}', res);
    const json = parseJson(res) as { certificate?: unknown; status?: unknown };
    if (typeof json.certificate !== 'string' || !json.certificate.includes('BEGIN CERTIFICATE')) {
      throw new AtlasUnavailableError(
        'Atlas returned a certificate record without a PEM certificate',
        200,
        false,
      );
    }
    return { kind: 'ready', certificatePem: json.certificate, status: String(json.status ?? '') };
  }

  /** [issuing CA PEM, root PEM]. */
  async trustchain(): Promise<string[]> {
    const res = await this.authorized('GET', '/trustchain');
    if (res.status !== 200) throw unexpected('GET /trustchain', res);
    const json = parseJson(res);
    if (!Array.isArray(json) || json.length < 1 || !json.every((p) => typeof p === 'string')) {
      throw new AtlasUnavailableError(
        'Atlas returned a trust chain that is not a list of PEM strings',
        200,
        false,
      );
    }
    return json as string[];
  }

  async revoke(serial: string, reason: string, at: Date): Promise<void> {
    const res = await this.authorized('PATCH', `/certificates/${encodeURIComponent(serial)}`, {
      revocation_reason: reason,
      revocation_time: Math.floor(at.getTime() / 1000),
    });
    if (res.status !== 204) throw unexpected('PATCH /certificates/{serial}', res);
  }

  close(): void {
    this.agent.destroy();
  }

  /** A call with the cached token; a 401 means it expired (10 min): log in again, once. */
  private async authorized(method: string, path: string, body?: unknown): Promise<RawResponse> {
    const first = await this.send(method, path, body, await this.accessToken());
    if (first.status !== 401) return checkCommon(method, path, first);
    this.token = undefined;
    const second = await this.send(method, path, body, await this.accessToken());
    if (second.status === 401) {
      throw new AtlasUnavailableError(
        `${method} ${path}: Atlas refused a fresh access token (401)`,
        401,
        false,
      );
    }
    return checkCommon(method, path, second);
  }

  private accessToken(): Promise<string> {
    if (this.token) return Promise.resolve(this.token);
    // Concurrent callers share one login.
    this.loggingIn ??= this.login().finally(() => {
      this.loggingIn = undefined;
    });
    return this.loggingIn;
  }

  private async login(): Promise<string> {
    const res = await this.send('POST', '/login', {
      api_key: this.opts.apiKey,
      api_secret: this.opts.apiSecret,
    });
    if (res.status === 401 || res.status === 403) {
      // Wrong credentials are an operator matter; retrying (and escalating) is the way to reach one.
      throw new AtlasUnavailableError(`Atlas refused the API credentials (${res.status})`, res.status, false);
    }
    if (res.status !== 200) throw unexpected('POST /login', res);
    const token = (parseJson(res) as { access_token?: unknown }).access_token;
    if (typeof token !== 'string' || token === '') {
      throw new AtlasUnavailableError('Atlas login answered without an access_token', 200, false);
    }
    this.token = token;
    return token;
  }

  private send(method: string, path: string, body: unknown, token?: string): Promise<RawResponse> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const url = new URL(this.base + path);
    const timeoutMs = this.opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return new Promise<RawResponse>((resolve, reject) => {
      let connected = false;
      const req = request(url, {
        method,
        agent: this.agent,
        headers: {
          accept: 'application/json',
          ...(payload !== undefined
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
            : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      });
      const timer = setTimeout(() => {
        req.destroy(
          new AtlasUnavailableError(
            `${method} ${path}: no answer within ${timeoutMs} ms`,
            undefined,
            connected,
          ),
        );
      }, timeoutMs);
      req.on('socket', (socket) => socket.once('secureConnect', () => (connected = true)));
      req.on('error', (err) => {
        clearTimeout(timer);
        if (err instanceof AtlasUnavailableError) return reject(err);
        reject(new AtlasUnavailableError(`${method} ${path}: ${err.message}`, undefined, connected));
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => req.destroy(err));
        res.on('end', () => {
          clearTimeout(timer);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          });
        });
      });
      req.end(payload);
    });
  }
}

/** Builds a client from a profile's CA config: files and secrets are read now, so mistakes show at start. */
export function atlasClientFromConfig(cfg: AtlasConfig, env: NodeJS.ProcessEnv = process.env): AtlasClient {
  return new AtlasClient({
    baseUrl: cfg.baseUrl,
    apiKey: secretFromEnv(cfg.apiKeyEnv, env),
    apiSecret: secretFromEnv(cfg.apiSecretEnv, env),
    clientCert: readFileSync(cfg.clientCertFile),
    clientKey: readFileSync(cfg.clientKeyFile),
    ...(cfg.serverCaFile ? { serverCa: readFileSync(cfg.serverCaFile) } : {}),
    ...(cfg.timeoutMs ? { timeoutMs: cfg.timeoutMs } : {}),
  });
}

/** Statuses with the same meaning on every endpoint. */
function checkCommon(method: string, path: string, res: RawResponse): RawResponse {
  if (res.status === 422)
    throw new AtlasPolicyError(problemDescription(res) ?? `${method} ${path}: policy violation`);
  if (res.status === 429 || res.status >= 500) {
    // 429 and 503 are refusals before any work; other 5xx may come after the work was done.
    const processed = res.status !== 429 && res.status !== 503;
    const detail = problemDescription(res);
    throw new AtlasUnavailableError(
      `${method} ${path}: Atlas answered ${res.status}${detail ? ` (${detail})` : ''}`,
      res.status,
      processed,
    );
  }
  return res;
}

function unexpected(what: string, res: RawResponse): AtlasUnavailableError {
  const detail = problemDescription(res);
  // A 4xx other than 422 was refused before processing; anything else we cannot vouch for.
  const processed = !(res.status >= 400 && res.status < 500);
  return new AtlasUnavailableError(
    `${what}: unexpected status ${res.status}${detail ? ` (${detail})` : ''}`,
    res.status,
    processed,
  );
}

function problemDescription(res: RawResponse): string | undefined {
  try {
    const json = JSON.parse(res.body) as { description?: unknown; detail?: unknown; title?: unknown };
    const text = json.description ?? json.detail ?? json.title;
    return typeof text === 'string' && text !== '' ? text : undefined;
  } catch {
    return undefined;
  }
}

function parseJson(res: RawResponse): unknown {
  try {
    return JSON.parse(res.body);
  } catch {
    throw new AtlasUnavailableError(
      `Atlas answered ${res.status} with a body that is not JSON`,
      res.status,
      false,
    );
  }
}

function header(res: RawResponse, name: string): string | undefined {
  const value = res.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
