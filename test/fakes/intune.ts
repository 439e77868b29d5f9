/**
 * A fake Entra + Graph + Intune speaking the wire contract of shared/reference/contracts.md:
 * client-credentials tokens per scope, Graph service discovery, the SCEP validation service and the
 * PKI connector service. It checks what a real tenant would refuse (scope, secret, token audience,
 * api-version, body shape) so an adapter that drifts from the contract fails here.
 */
import { randomUUID } from 'node:crypto';
import { checkClientAssertion } from './client-assertion-check.js';
import {
  bearerOf,
  type FailureMode,
  FailureQueue,
  type FakeReply,
  type FakeRequest,
  failureReply,
  json,
  startFakeServer,
} from './server.js';

export const INTUNE_CODES = [
  'Success',
  'Unknown',
  'CertificateRequestDecodingFailed',
  'ChallengePasswordMissing',
  'ChallengeDeserializationError',
  'ChallengeDecryptionError',
  'ChallengeDecodingError',
  'ChallengeInvalidTimestamp',
  'ChallengeExpired',
  'SubjectNameMissing',
  'SubjectNameMismatch',
  'SubjectAltNameMissing',
  'SubjectAltNameMismatch',
  'KeyUsageMismatch',
  'KeyLengthMismatch',
  'EnhancedKeyUsageMissing',
  'EnhancedKeyUsageMismatch',
  'AadKeyIdentifierListMissing',
  'RegisteredKeyMismatch',
  'SigningCertThumbprintMismatch',
  'ScepProfileNoLongerTargetedToTheClient',
  'SignatureValidationFailed',
  'BadCertificateRequestIdInChallenge',
  'BadDeviceIdInChallenge',
  'BadUserIdInChallenge',
] as const;
export type IntuneCode = (typeof INTUNE_CODES)[number];

export type IntuneEndpoint =
  | 'token'
  | 'discovery'
  | 'validateRequest'
  | 'successNotification'
  | 'failureNotification'
  | 'downloadRevocationRequests'
  | 'uploadRevocationResults';

export interface IntuneCall {
  endpoint: IntuneEndpoint;
  headers: FakeRequest['headers'];
  /** Parsed JSON body, or the form fields for the token endpoint. */
  body: unknown;
  status: number;
}

export const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';
export const INTUNE_SCOPE = 'https://api.manage.microsoft.com//.default';
const INTUNE_APP_ID = '0000000a-0000-0000-c000-000000000000';
const SCEP_PATH = '/StatelessScepRequestValidationService';
const PKI_PATH = '/StatelessPkiConnectorService';

export interface FakeIntune {
  url: string;
  close(): Promise<void>;
  /** Every call, in order. */
  calls: IntuneCall[];
  callsTo(endpoint: IntuneEndpoint): IntuneCall[];
  /** Tokens handed out, by scope, and what the client authenticated with ('secret' or the certificate's x5t#S256). */
  tokensIssued: Array<{ scope: string; token: string; credential: string }>;
  /**
   * Certificates (DER) registered on the app registration, as an operator uploads them to Entra ID:
   * a client assertion must be signed by the key of one of them. Several during a rotation's overlap.
   */
  registeredCertificates: Uint8Array[];
  /** Token requests refused for a bad client assertion: the AADSTS code and description. */
  assertionRefusals: Array<{ code: string; description: string }>;
  knobs: {
    /** validateRequest answer per transactionId (default: defaultCode). */
    codes: Map<string, IntuneCode>;
    /** validateRequest answer for transactions not in `codes`. */
    defaultCode: IntuneCode;
    /** Code answered to success/failure notifications (default Success). */
    notificationCode: IntuneCode;
    /** expires_in of issued tokens. */
    tokenLifetimeSeconds: number;
    /** How long a 'slow' reply waits. */
    slowMs: number;
    /** Provider names as discovery lists them (case differs from the contract on purpose). */
    providerNames: { scep: string; pki: string };
    failNext(endpoint: IntuneEndpoint, mode: FailureMode, times?: number): void;
  };
  /** Revocation requests Intune will hand out (downloadRevocationRequests dequeues them). */
  revocationQueue: Array<{
    requestContext: string;
    serialNumber: string;
    issuerName: string;
    caConfiguration: string;
  }>;
  /** Results received by uploadRevocationResults. */
  revocationResults: unknown[];
}

export async function startFakeIntune(opts: {
  tenantId: string;
  clientId: string;
  /** The app's client secret; absent: the app accepts only certificate credentials. */
  clientSecret?: string;
}): Promise<FakeIntune> {
  const seenJti = new Set<string>();
  const failures = new FailureQueue<IntuneEndpoint>();
  /** Valid tokens -> scope; a '401' failure revokes every token of that scope. */
  const validTokens = new Map<string, string>();
  const calls: IntuneCall[] = [];
  const fake: Omit<FakeIntune, 'url' | 'close'> = {
    calls,
    callsTo: (endpoint) => calls.filter((c) => c.endpoint === endpoint),
    tokensIssued: [],
    registeredCertificates: [],
    assertionRefusals: [],
    knobs: {
      codes: new Map(),
      defaultCode: 'Success',
      notificationCode: 'Success',
      tokenLifetimeSeconds: 3600,
      slowMs: 2000,
      providerNames: { scep: 'scepRequestValidationFEService', pki: 'PKICONNECTORFESERVICE' },
      failNext: (endpoint, mode, times) => failures.add(endpoint, mode, times),
    },
    revocationQueue: [],
    revocationResults: [],
  };
  let baseUrl = '';

  const record = (endpoint: IntuneEndpoint, req: FakeRequest, body: unknown, reply: FakeReply): FakeReply => {
    calls.push({ endpoint, headers: req.headers, body, status: reply.status });
    return reply;
  };

  /** Injected failure, else the token check, else undefined (go on). */
  const gate = (endpoint: IntuneEndpoint, req: FakeRequest, scope: string): FakeReply | undefined => {
    const mode = failures.take(endpoint);
    if (mode === '401') for (const [t, s] of validTokens) if (s === scope) validTokens.delete(t);
    if (mode) return failureReply(mode, fake.knobs.slowMs);
    const token = bearerOf(req);
    if (!token || validTokens.get(token) !== scope) return json(401, { error: 'invalid_token' });
    return undefined;
  };

  const token = (req: FakeRequest): FakeReply => {
    const form = new URLSearchParams(req.body);
    const fields = Object.fromEntries(form);
    const respond = (reply: FakeReply) => record('token', req, fields, reply);
    const mode = failures.take('token');
    if (mode) return respond(failureReply(mode, fake.knobs.slowMs));
    if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded'))
      return respond(json(400, { error: 'invalid_request', error_description: 'form body expected' }));
    if (fields.grant_type !== 'client_credentials')
      return respond(json(400, { error: 'unsupported_grant_type' }));
    if (fields.client_id !== opts.clientId) return respond(json(401, { error: 'invalid_client' }));
    let credential: string;
    if (fields.client_assertion !== undefined || fields.client_assertion_type !== undefined) {
      if (fields.client_secret !== undefined)
        return respond(
          json(400, { error: 'invalid_request', error_description: 'AADSTS90023: one credential only' }),
        );
      if (fields.client_assertion_type !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer')
        return respond(
          json(400, {
            error: 'invalid_request',
            error_description: 'AADSTS50027: bad client_assertion_type',
          }),
        );
      const verdict = checkClientAssertion(fields.client_assertion ?? '', {
        clientId: opts.clientId,
        audience: `${baseUrl}/${opts.tenantId}/oauth2/v2.0/token`,
        registered: fake.registeredCertificates,
        seenJti,
      });
      if (!verdict.ok) {
        fake.assertionRefusals.push({ code: verdict.code, description: verdict.description });
        // Entra answers 401 invalid_client with the AADSTS code first in error_description.
        return respond(
          json(verdict.error === 'invalid_client' ? 401 : 400, {
            error: verdict.error,
            error_description: `${verdict.code}: ${verdict.description}`,
            error_codes: [Number(verdict.code.slice(6))],
          }),
        );
      }
      credential = verdict.thumbprint;
    } else {
      if (opts.clientSecret === undefined || fields.client_secret !== opts.clientSecret)
        return respond(
          json(401, {
            error: 'invalid_client',
            error_description: 'AADSTS7000215: Invalid client secret provided.',
          }),
        );
      credential = 'secret';
    }
    const scope = fields.scope ?? '';
    if (scope !== GRAPH_SCOPE && scope !== INTUNE_SCOPE)
      return respond(json(400, { error: 'invalid_scope' }));
    const accessToken = `tok-${randomUUID()}`;
    validTokens.set(accessToken, scope);
    fake.tokensIssued.push({ scope, token: accessToken, credential });
    return respond(
      json(200, {
        token_type: 'Bearer',
        expires_in: fake.knobs.tokenLifetimeSeconds,
        access_token: accessToken,
      }),
    );
  };

  const discovery = (req: FakeRequest): FakeReply => {
    const denied = gate('discovery', req, GRAPH_SCOPE);
    if (denied) return record('discovery', req, undefined, denied);
    return record(
      'discovery',
      req,
      undefined,
      json(200, {
        value: [
          { providerName: 'SomeOtherService', uri: `${baseUrl}/Other` },
          { providerName: fake.knobs.providerNames.scep, uri: `${baseUrl}${SCEP_PATH}` },
          { providerName: fake.knobs.providerNames.pki, uri: `${baseUrl}${PKI_PATH}/` },
        ],
      }),
    );
  };

  /** An Intune service call: failures, token (Intune scope), api-version, JSON body. */
  const service = (
    endpoint: IntuneEndpoint,
    req: FakeRequest,
    apiVersion: string,
    answer: (body: Record<string, unknown>) => FakeReply,
  ): FakeReply => {
    let body: unknown;
    try {
      body = JSON.parse(req.body);
    } catch {
      return record(endpoint, req, req.body, json(400, { error: 'body is not JSON' }));
    }
    const denied = gate(endpoint, req, INTUNE_SCOPE);
    if (denied) return record(endpoint, req, body, denied);
    if (req.headers['api-version'] !== apiVersion)
      return record(endpoint, req, body, json(400, { error: `api-version ${apiVersion} expected` }));
    if (!/^[0-9a-f-]{36}$/i.test(String(req.headers['client-request-id'] ?? '')))
      return record(endpoint, req, body, json(400, { error: 'client-request-id GUID expected' }));
    if (!(req.headers['content-type'] ?? '').startsWith('application/json'))
      return record(endpoint, req, body, json(415, { error: 'application/json expected' }));
    return record(endpoint, req, body, answer((body ?? {}) as Record<string, unknown>));
  };

  const hasStrings = (o: unknown, keys: string[]) =>
    typeof o === 'object' &&
    o !== null &&
    keys.every((k) => typeof (o as Record<string, unknown>)[k] === 'string');

  const server = await startFakeServer((req) => {
    if (req.method === 'POST' && req.path === `/${opts.tenantId}/oauth2/v2.0/token`) return token(req);
    if (req.method === 'GET' && req.path === `/v1.0/servicePrincipals/appId=${INTUNE_APP_ID}/endpoints`)
      return discovery(req);
    if (req.method === 'POST' && req.path === `${SCEP_PATH}/ScepActions/validateRequest`)
      return service('validateRequest', req, '2018-02-20', (b) => {
        const r = b.request as Record<string, unknown>;
        if (!hasStrings(r, ['transactionId', 'certificateRequest', 'callerInfo']))
          return json(400, { error: 'request {transactionId, certificateRequest, callerInfo} expected' });
        const code = fake.knobs.codes.get(r.transactionId as string) ?? fake.knobs.defaultCode;
        return json(200, { code, errorDescription: code === 'Success' ? '' : `fake Intune says ${code}` });
      });
    if (req.method === 'POST' && req.path === `${SCEP_PATH}/ScepActions/successNotification`)
      return service('successNotification', req, '2018-02-20', (b) => {
        const keys = [
          'transactionId',
          'certificateRequest',
          'certificateThumbprint',
          'certificateSerialNumber',
          'certificateExpirationDateUtc',
          'issuingCertificateAuthority',
          'callerInfo',
        ];
        if (!hasStrings(b.notification, keys)) return json(400, { error: `notification {${keys}} expected` });
        return json(200, { code: fake.knobs.notificationCode, errorDescription: '' });
      });
    if (req.method === 'POST' && req.path === `${SCEP_PATH}/ScepActions/failureNotification`)
      return service('failureNotification', req, '2018-02-20', (b) => {
        const n = b.notification as Record<string, unknown>;
        if (!hasStrings(n, ['transactionId', 'certificateRequest', 'errorDescription', 'callerInfo']))
          return json(400, { error: 'notification fields missing' });
        if (!Number.isInteger(n.hResult)) return json(400, { error: 'hResult must be a 32-bit integer' });
        if ((n.errorDescription as string).length > 255)
          return json(400, { error: 'errorDescription too long' });
        return json(200, { code: fake.knobs.notificationCode, errorDescription: '' });
      });
    if (
      req.method === 'POST' &&
      req.path === `${PKI_PATH}/CertificateAuthorityRequests/downloadRevocationRequests`
    )
      return service('downloadRevocationRequests', req, '5019-05-05', (b) => {
        const max = (b.downloadParameters as Record<string, unknown> | undefined)?.maxRequests;
        if (!Number.isInteger(max) || (max as number) < 1 || (max as number) > 500)
          return json(400, { error: 'maxRequests 1-500 expected' });
        return json(200, { value: fake.revocationQueue.splice(0, max as number) });
      });
    if (
      req.method === 'POST' &&
      req.path === `${PKI_PATH}/CertificateAuthorityRequests/uploadRevocationResults`
    )
      return service('uploadRevocationResults', req, '5019-05-05', (b) => {
        if (!Array.isArray(b.results)) return json(400, { error: 'results expected' });
        fake.revocationResults.push(...b.results);
        return json(200, { value: true });
      });
    return json(404, { error: `fake Intune has no ${req.method} ${req.path}` });
  });
  baseUrl = server.url;
  return { ...fake, url: server.url, close: server.close };
}
