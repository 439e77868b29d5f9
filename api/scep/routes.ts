import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { PkiConfig, Profile } from '../../config/profile-types.js';
import type { CaIssuance } from '../../config/runtime.js';
import { capabilitiesText } from '../../pki/scep/capabilities.js';
import { decodeGetMessageParam } from '../../pki/scep/decode.js';
import { encodeCertsOnly, encodeSignedCertsOnly } from '../../pki/scep/encode.js';
import type { EnrollmentGateway } from '../enrollment-gateway.js';
import { type RateLimitSettings, rateLimit } from '../http/rate-limit.js';
import { noteRequest } from '../http/request-log.js';
import type { ProfileRa } from '../ra.js';
import type { RevocationService } from '../revocation/service.js';
import { handlePkiOperation } from './pki-operation.js';

export interface ScepDeps {
  config: PkiConfig;
  ras: Map<string, ProfileRa>;
  gateway: EnrollmentGateway;
  /** A PKCSReq is a few KiB; anything far larger is not SCEP. */
  maxBodyBytes: number;
  /** Answers GetCert and GetCRL; without it they get FAILURE badRequest. */
  revocation?: RevocationService;
  /** Per-client-IP token bucket; default from SCEP_RATE_PER_MINUTE / SCEP_RATE_BURST (api/http/rate-limit.ts). */
  rateLimit?: RateLimitSettings;
  /** Where our CA signs (CA_ISSUANCE, config/runtime.ts): written into each enrollment's policy. */
  caIssuance?: CaIssuance;
}

/**
 * SCEP over HTTP (RFC 8894 section 4). Mounted at /scep, /scep/<profile> and the NDES path
 * /cgi-bin/pkiclient.exe that Windows, Intune and network gear expect.
 */
export function scepRoutes(deps: ScepDeps): Hono {
  const app = new Hono();
  const limit = bodyLimit({
    maxSize: deps.maxBodyBytes,
    onError: (c) => c.text(`request body exceeds ${deps.maxBodyBytes} bytes`, 413),
  });
  const handler = (c: Context) => handle(c, deps);
  const rate = rateLimit('scep', deps.rateLimit);
  for (const path of ['/scep', '/scep/:profile', '/cgi-bin/pkiclient.exe']) {
    app.get(path, rate, handler);
    app.post(path, rate, limit, handler);
  }
  return app;
}

async function handle(c: Context, deps: ScepDeps): Promise<Response> {
  const operation = c.req.query('operation');
  const profile = selectProfile(c, deps.config);
  if (!profile) return c.text(`unknown SCEP profile ${c.req.param('profile')}`, 404);
  const ra = deps.ras.get(profile.name);
  if (!ra) return c.text(`profile ${profile.name} has no RA certificate`, 503);
  noteRequest(c, { profile: profile.name });

  switch (operation) {
    case 'GetCACaps':
      return c.text(capabilitiesText({ nextCa: (await ra.nextIssuingCertificate?.()) !== undefined }));
    case 'GetCACert':
      return binary(encodeCertsOnly((await ra.current()).caBundle), 'application/x-x509-ca-ra-cert');
    case 'GetNextCACert': {
      // RFC 8894 4.7: the next CA certificate in a certs-only SignedData, itself signed by the RA.
      const next = await ra.nextIssuingCertificate?.();
      if (!next)
        return c.text(`profile ${profile.name} has no next CA certificate (no rollover prepared)`, 404);
      const view = await ra.current();
      const signed = await encodeSignedCertsOnly([next], {
        certificate: view.raCertificate,
        chain: view.raChain,
        signer: ra.signer,
      });
      return binary(signed, 'application/x-x509-next-ca-cert');
    }
    case 'PKIOperation': {
      const body = await pkiMessage(c);
      if (typeof body === 'string') return c.text(body, 400);
      const reply = await handlePkiOperation(body, profile, ra, deps, (ids) => noteRequest(c, ids));
      if (reply.kind === 'http-error') return c.text(reply.message, reply.status);
      noteRequest(c, { pkiStatus: reply.status, ...(reply.failInfo ? { failInfo: reply.failInfo } : {}) });
      return binary(reply.body, 'application/x-pki-message');
    }
    case undefined:
      return c.text('missing operation parameter', 400);
    default:
      return c.text(`unsupported SCEP operation ${operation.slice(0, 64)}`, 400);
  }
}

/**
 * The profile named in the path, else in `message=` (NDES style), else the first one. Other
 * `message=` values (a CA identifier some clients send with GetCACert) are not an error.
 */
function selectProfile(c: Context, config: PkiConfig): Profile | undefined {
  const named = c.req.param('profile');
  if (named !== undefined) return config.profiles.find((p) => p.name === named);
  const message = c.req.query('message');
  return config.profiles.find((p) => p.name === message) ?? config.profiles[0];
}

/** The PKIOperation message (DER) from a POST body or a GET `message=`, or why there is none. */
async function pkiMessage(c: Context): Promise<Uint8Array | string> {
  if (c.req.method === 'POST') {
    let body: Uint8Array;
    try {
      body = new Uint8Array(await c.req.arrayBuffer());
    } catch {
      // The client went away mid-body (or the server's request timeout cut it): nobody to answer.
      return 'request body aborted';
    }
    return body.length > 0 ? body : 'empty PKIOperation body';
  }
  const param = c.req.query('message');
  if (!param) return 'missing message parameter';
  return decodeGetMessageParam(param) ?? 'message parameter is not base64';
}

function binary(body: Uint8Array, contentType: string): Response {
  return new Response(body, { headers: { 'content-type': contentType } });
}
