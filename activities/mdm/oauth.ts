import { z } from 'zod';
import { CLIENT_ASSERTION_TYPE } from './client-assertion.js';
import { isSuccess, jsonBody, MdmUnavailableError, send, statusError } from './http.js';

const tokenAnswer = z.object({
  access_token: z.string().min(1),
  // Entra answers a number; some servers send it as a string.
  expires_in: z.coerce.number().positive().optional(),
});

/**
 * How the client proves who it is at the token endpoint: a shared secret, or (recommended) an
 * assertion signed with a key that never leaves the HSM (RFC 7523), made anew for each request.
 */
export type ClientAuthentication =
  | { kind: 'secret'; secret: string }
  | { kind: 'assertion'; assertion: (audience: string) => Promise<string> };

/**
 * An OAuth2 client-credentials access token, fetched on first use and reused until shortly before it
 * expires. `drop()` forgets it (the resource server answered 401: revoked or rotated).
 */
export class ClientCredentialsToken {
  private cached?: { token: string; refreshAt: number };
  private pending?: Promise<string>;

  constructor(
    private readonly opts: {
      tokenUrl: string;
      clientId: string;
      client: ClientAuthentication;
      scope?: string;
      timeoutMs: number;
      what: string;
    },
  ) {}

  async get(): Promise<string> {
    if (this.cached && Date.now() < this.cached.refreshAt) return this.cached.token;
    // Concurrent activities share one token request instead of each asking for a token.
    this.pending ??= this.fetch().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  drop(): void {
    this.cached = undefined;
  }

  private async fetch(): Promise<string> {
    const { tokenUrl, clientId, client, scope, timeoutMs, what } = this.opts;
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId });
    if (client.kind === 'secret') form.set('client_secret', client.secret);
    else {
      form.set('client_assertion_type', CLIENT_ASSERTION_TYPE);
      // The audience is the token endpoint itself (Entra: "aud" must be the token URL).
      form.set('client_assertion', await client.assertion(tokenUrl));
    }
    if (scope) form.set('scope', scope);
    const reply = await send(
      tokenUrl,
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
      },
      { timeoutMs, what: `${what} token` },
    );
    // A refused client secret or certificate is a configuration fault: still thrown, so the enrollment escalates.
    if (!isSuccess(reply.status)) throw statusError(reply, `${what} token`);
    const parsed = tokenAnswer.safeParse(jsonBody(reply, `${what} token`));
    if (!parsed.success) throw new MdmUnavailableError(`${what} token: answer carries no access_token`);
    const lifetime = parsed.data.expires_in ?? 300;
    // Renew a minute early (or at half-life for short tokens) so a token never expires in flight.
    const margin = Math.min(60, lifetime / 2);
    this.cached = { token: parsed.data.access_token, refreshAt: Date.now() + (lifetime - margin) * 1000 };
    return parsed.data.access_token;
  }
}
