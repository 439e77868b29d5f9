/**
 * Revocation over HTTP for relying parties: GET /crl/<profile>.crl and, for later CA generations,
 * /crl/<profile>/<generation>.crl (the CRL distribution points of issued certificates) and the OCSP responder (RFC 6960 A.1: GET /ocsp/<base64> and POST /ocsp, the
 * URL in their AIA), over a RevocationService, rate-limited per client (OCSP_RATE_PER_MINUTE).
 */
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { ocspError } from '../../pki/ocsp.js';
import { type RateLimitSettings, rateLimit } from '../http/rate-limit.js';
import type { RevocationService } from './service.js';

/** An OCSP request is a few hundred bytes; a generous cap still keeps junk out. */
export const MAX_OCSP_REQUEST_BYTES = 8 * 1024;

/** GET /crl/:name and the OCSP responder, over a RevocationService. */
export function revocationRoutes(service: RevocationService, ocspRate?: RateLimitSettings): Hono {
  const app = new Hono();
  // '/ocsp/*' also matches '/ocsp' (POST): one bucket for both forms.
  app.use('/ocsp/*', rateLimit('ocsp', ocspRate));

  app.get('/crl/:name', async (c) => {
    const name = c.req.param('name');
    if (!name.endsWith('.crl')) return c.text('CRLs are served as /crl/<profile>.crl', 404);
    const profile = name.slice(0, -'.crl'.length);
    const issuingCa = service.issuingCaOfProfile(profile);
    if (!issuingCa) return c.text(`no local CA for profile ${profile.slice(0, 64)}`, 404);
    const der = await service.latestCrl(issuingCa);
    if (!der) return c.text(`no CRL published yet for profile ${profile}`, 404);
    return crlReply(der);
  });

  // One CRL per CA generation (rotation): /crl/<profile>/<generation>.crl, the URL its certificates carry.
  app.get('/crl/:profile/:file', async (c) => {
    const profile = c.req.param('profile');
    const generation = /^([1-9][0-9]{0,5})\.crl$/.exec(c.req.param('file'))?.[1];
    if (!generation)
      return c.text('CRLs of a CA generation are served as /crl/<profile>/<generation>.crl', 404);
    const issuingCa = await service.issuingCaOfGeneration(profile, Number(generation));
    if (!issuingCa) return c.text(`no CA generation ${generation} for profile ${profile.slice(0, 64)}`, 404);
    const der = await service.latestCrl(issuingCa);
    if (!der)
      return c.text(
        `no CRL published yet for generation ${generation} of profile ${profile.slice(0, 64)}`,
        404,
      );
    return crlReply(der);
  });

  // RFC 6960 A.1.1: GET {url}/{url-encoding of base-64 encoding of the DER OCSPRequest}. Base64 may
  // hold '/', sent raw by some clients: the whole rest of the path is the request.
  app.get('/ocsp/*', async (c) => {
    const raw = new URL(c.req.url).pathname.slice('/ocsp/'.length);
    if (raw.length > (MAX_OCSP_REQUEST_BYTES * 4) / 3 + 64)
      return ocspReply(ocspError('malformedRequest'), 414);
    let der: Uint8Array;
    try {
      const b64 = decodeURIComponent(raw);
      if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(b64)) return ocspReply(ocspError('malformedRequest'));
      der = Buffer.from(b64.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    } catch {
      return ocspReply(ocspError('malformedRequest'));
    }
    return ocspReply(await service.answerOcsp(der));
  });

  app.post(
    '/ocsp',
    bodyLimit({
      maxSize: MAX_OCSP_REQUEST_BYTES,
      onError: () => ocspReply(ocspError('malformedRequest'), 413),
    }),
    async (c: Context) => {
      const body = new Uint8Array(await c.req.arrayBuffer());
      return ocspReply(await service.answerOcsp(body));
    },
  );

  return app;
}

function crlReply(der: Uint8Array): Response {
  return new Response(der, {
    headers: { 'content-type': 'application/pkix-crl', 'cache-control': 'max-age=60' },
  });
}

function ocspReply(body: Uint8Array, status = 200): Response {
  return new Response(body, { status, headers: { 'content-type': 'application/ocsp-response' } });
}
