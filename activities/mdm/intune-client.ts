/**
 * Intune's service-to-service plumbing (microsoft/Intune-Resource-Access, CsrValidation): Entra
 * client-credentials tokens per scope, Graph service discovery, and POSTs to the discovered
 * Intune services. Shared by the SCEP validation verifier and the revocation client.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { secretFromEnv } from '../../config/load.js';
import type { MdmVerifierConfig } from '../../config/profile-types.js';
import type { ServiceCredentialSource } from '../service-credentials/current.js';
import { signClientAssertion } from './client-assertion.js';
import { DEFAULT_TIMEOUT_MS, isSuccess, jsonBody, MdmUnavailableError, send, statusError } from './http.js';
import { type ClientAuthentication, ClientCredentialsToken } from './oauth.js';

export type IntuneConfig = Extract<MdmVerifierConfig, { type: 'intune' }>;

/** Intune's first-party application: its service principal lists the Intune service endpoints. */
export const INTUNE_APP_ID = '0000000a-0000-0000-c000-000000000000';
export const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';
/** The double slash is literal: Intune's resource id ends with '/', then '/.default' is appended. */
export const INTUNE_SCOPE = 'https://api.manage.microsoft.com//.default';
export const CALLER_INFO = 'device-pki';

export type IntuneService = 'ScepRequestValidationFEService' | 'PkiConnectorFEService';

export interface IntuneClientOptions {
  env?: NodeJS.ProcessEnv;
  /** Overrides cfg.timeoutMs (tests). */
  timeoutMs?: number;
  /** The service credentials of this process (data token): needed when cfg.clientCertificate is set. */
  credentials?: ServiceCredentialSource;
}

/** The client secret, or assertions signed with the service credential that is active at the time. */
function clientAuthentication(cfg: IntuneConfig, opts: IntuneClientOptions): ClientAuthentication {
  const certificate = cfg.clientCertificate;
  if (!certificate) {
    // Read now: a missing secret stops the worker at start-up, naming the variable.
    return { kind: 'secret', secret: secretFromEnv(cfg.clientSecretEnv ?? '', opts.env) };
  }
  const { credentials } = opts;
  if (!credentials)
    throw new Error(
      `Intune client certificate ${certificate.name}: this process holds no service credentials`,
    );
  return {
    kind: 'assertion',
    assertion: async (audience) => {
      const current = await credentials.current(certificate.name);
      return signClientAssertion({
        clientId: cfg.clientId,
        audience,
        certificate: current.certificate,
        signer: current.signer,
      });
    },
  };
}

const discoveryAnswer = z.object({
  value: z.array(z.object({ providerName: z.string(), uri: z.string() }).loose()),
});

export class IntuneClient {
  private readonly timeoutMs: number;
  private readonly graphToken: ClientCredentialsToken;
  private readonly intuneToken: ClientCredentialsToken;
  /** providerName (lower-case) -> base URI; forgotten after any failed call (endpoints move). */
  private services?: Map<string, string>;

  constructor(
    private readonly cfg: IntuneConfig,
    opts: IntuneClientOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const authority = cfg.authority.endsWith('/') ? cfg.authority : `${cfg.authority}/`;
    const tokenUrl = `${authority}${encodeURIComponent(cfg.tenantId)}/oauth2/v2.0/token`;
    const client = clientAuthentication(cfg, opts);
    const base = { tokenUrl, clientId: cfg.clientId, client, timeoutMs: this.timeoutMs };
    this.graphToken = new ClientCredentialsToken({ ...base, scope: GRAPH_SCOPE, what: 'Entra (Graph)' });
    this.intuneToken = new ClientCredentialsToken({ ...base, scope: INTUNE_SCOPE, what: 'Entra (Intune)' });
  }

  /** POST {service uri}/{suffix}; returns the JSON answer of a 2xx, throws MdmUnavailableError otherwise. */
  async post(service: IntuneService, suffix: string, apiVersion: string, body: unknown): Promise<unknown> {
    const what = `Intune ${suffix}`;
    const uri = await this.serviceUri(service);
    const token = await this.intuneToken.get();
    try {
      const reply = await send(
        `${uri}/${suffix}`,
        {
          method: 'POST',
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            accept: 'application/json',
            // Correlates our call with Intune's logs when Microsoft support is involved.
            'client-request-id': randomUUID(),
            'api-version': apiVersion,
            'user-agent': CALLER_INFO,
          },
          body: JSON.stringify(body),
        },
        { timeoutMs: this.timeoutMs, what },
      );
      if (reply.status === 401) {
        // The token was revoked or the app's permissions changed: the next attempt gets a fresh one.
        this.intuneToken.drop();
        throw statusError(reply, what);
      }
      if (!isSuccess(reply.status)) throw statusError(reply, what);
      return jsonBody(reply, what);
    } catch (err) {
      // As Microsoft's client does: a failing endpoint may have moved, so discover again next time.
      this.services = undefined;
      throw err;
    }
  }

  private async serviceUri(service: IntuneService): Promise<string> {
    this.services ??= await this.discover();
    const uri = this.services.get(service.toLowerCase());
    if (!uri) {
      this.services = undefined;
      throw new MdmUnavailableError(`Graph discovery lists no ${service} endpoint for this tenant`);
    }
    return uri;
  }

  private async discover(): Promise<Map<string, string>> {
    const what = 'Graph service discovery';
    const token = await this.graphToken.get();
    const graph = this.cfg.graphUrl.replace(/\/+$/, '');
    const reply = await send(
      `${graph}/v1.0/servicePrincipals/appId=${INTUNE_APP_ID}/endpoints`,
      { method: 'GET', headers: { authorization: `Bearer ${token}`, accept: 'application/json' } },
      { timeoutMs: this.timeoutMs, what },
    );
    if (reply.status === 401) this.graphToken.drop();
    if (!isSuccess(reply.status)) throw statusError(reply, what);
    const parsed = discoveryAnswer.safeParse(jsonBody(reply, what));
    if (!parsed.success) throw new MdmUnavailableError(`${what}: answer is not an endpoint list`);
    return new Map(parsed.data.value.map((e) => [e.providerName.toLowerCase(), e.uri.replace(/\/+$/, '')]));
  }
}
