/**
 * Revocation status for relying parties: the CRL of each profile's issuing CA over HTTP
 * (GET /crl/<profile>.crl, the URL in issued certificates' CRL distribution point) and an OCSP
 * responder (RFC 6960 GET /ocsp/<base64> and POST /ocsp, the URL in their AIA). The same lookups
 * answer SCEP GetCert and GetCRL.
 */
import { and, eq } from 'drizzle-orm';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import * as pkijs from 'pkijs';
import { latestCrl, publishCrl } from '../activities/ca/local-hsm/crl.js';
import type { PkiConfig } from '../config/profile-types.js';
import type { Database } from '../db/client.js';
import { certificates } from '../db/schema.js';
import type { HsmToken } from '../hsm/token.js';
import {
  buildOcspResponse,
  certIdNamesIssuer,
  type OcspCertRequest,
  type OcspSingleAnswer,
  ocspError,
  parseOcspRequest,
} from '../pki/ocsp.js';
import { rawSubject } from '../pki/x509/certificate.js';
import { revocationReasonOf, unsignedHex } from '../pki/x509/crl.js';
import { type RateLimitSettings, rateLimit } from './http/rate-limit.js';
import type { ProfileRa } from './ra.js';

/** An OCSP request is a few hundred bytes; a generous cap still keeps junk out. */
export const MAX_OCSP_REQUEST_BYTES = 8 * 1024;
/** How long an OCSP answer may be cached: status comes from the database at each request. */
export const OCSP_VALIDITY_MS = 60 * 60 * 1000;

export interface RevocationServiceDeps {
  config: PkiConfig;
  db: Database;
  /** The issuing CA certificates, as the SCEP endpoint holds them. */
  ras: Map<string, ProfileRa>;
  /**
   * The HSM, where the API process holds it: signs OCSP responses and, when a CA has no CRL yet,
   * publishes its first one (the same publishCrl the worker runs). Without it OCSP answers
   * internalError and a missing CRL is a 404.
   */
  token?: HsmToken;
}

/** One of our issuing CAs (local-hsm): its key label (certificates.issuing_ca) and certificate. */
interface IssuingCa {
  profile: string;
  issuingCa: string;
  certificate: Uint8Array;
  subject: Uint8Array;
}

export interface RevocationService {
  /** A certificate we issued, by issuer Name (DER) and serial (unsigned big-endian). */
  findCertificate(
    issuer: Uint8Array,
    serial: Uint8Array,
  ): Promise<{ der: Uint8Array; issuingCa: string; profile: string } | undefined>;
  /** The latest CRL (DER) of an issuing CA; publishes the first one on demand when the HSM is here. */
  latestCrl(issuingCa: string): Promise<Uint8Array | undefined>;
  /** The issuing CA key label of a profile with a local CA. */
  issuingCaOfProfile(profile: string): string | undefined;
  /** A complete OCSP answer (DER OCSPResponse) to a DER OCSPRequest. Never throws. */
  answerOcsp(request: Uint8Array): Promise<Uint8Array>;
}

export function revocationService(deps: RevocationServiceDeps): RevocationService {
  const cas: IssuingCa[] = [];
  for (const profile of deps.config.profiles) {
    const ra = deps.ras.get(profile.name);
    if (profile.ca.type !== 'local-hsm' || !ra) continue;
    cas.push({
      profile: profile.name,
      issuingCa: profile.ca.keyLabel,
      certificate: ra.issuingCertificate,
      subject: rawSubject(ra.issuingCertificate),
    });
  }

  const latest = async (issuingCa: string): Promise<Uint8Array | undefined> => {
    const stored = await latestCrl(deps.db, issuingCa);
    if (stored) return stored.der;
    if (!deps.token || !cas.some((ca) => ca.issuingCa === issuingCa)) return undefined;
    await publishCrl({ db: deps.db, token: deps.token }, { issuingCa });
    return (await latestCrl(deps.db, issuingCa))?.der;
  };

  const certificateRow = async (issuingCa: string, serialHex: string) => {
    const [row] = await deps.db
      .select({
        der: certificates.der,
        profile: certificates.profile,
        status: certificates.status,
        revokedAt: certificates.revokedAt,
        reason: certificates.revocationReason,
      })
      .from(certificates)
      .where(and(eq(certificates.issuingCa, issuingCa), eq(certificates.serialHex, serialHex)));
    return row;
  };

  const statusOf = async (request: OcspCertRequest, ca: IssuingCa | undefined, now: Date) => {
    const answer = (status: OcspSingleAnswer['status']): OcspSingleAnswer => ({
      certId: request.certId,
      status,
      thisUpdate: now,
      nextUpdate: new Date(now.getTime() + OCSP_VALIDITY_MS),
    });
    if (!ca) return answer('unknown');
    const row = await certificateRow(ca.issuingCa, request.serialHex);
    if (!row) return answer('unknown');
    if (row.status !== 'revoked') return answer('good');
    return answer({ revoked: { at: row.revokedAt ?? now, reason: revocationReasonOf(row.reason) } });
  };

  return {
    async findCertificate(issuer, serial) {
      const issuerHex = Buffer.from(issuer).toString('hex');
      const serialHex = unsignedHex(serial);
      for (const ca of cas) {
        if (!sameName(ca.subject, issuer, issuerHex)) continue;
        const row = await certificateRow(ca.issuingCa, serialHex);
        if (row) return { der: row.der, issuingCa: ca.issuingCa, profile: row.profile };
      }
      return undefined;
    },
    latestCrl: latest,
    issuingCaOfProfile: (profile) => cas.find((ca) => ca.profile === profile)?.issuingCa,
    async answerOcsp(der) {
      const parsed = parseOcspRequest(der);
      if (!parsed.ok) return ocspError('malformedRequest');
      try {
        const matched = parsed.requests.map((r) => cas.find((ca) => certIdNamesIssuer(r, ca.certificate)));
        // One response, one signature: the CA of the first CertID we know signs; CertIDs of
        // another CA in the same request are 'unknown' (RFC 6960 2.2: the CA answers for itself).
        const responder = matched.find((ca) => ca !== undefined) ?? cas[0];
        if (!responder) return ocspError('unauthorized');
        if (!deps.token) {
          console.error('[ocsp] no HSM token in this process: cannot sign OCSP responses');
          return ocspError('internalError');
        }
        const now = new Date();
        const responses = await Promise.all(
          parsed.requests.map((r, i) => statusOf(r, matched[i] === responder ? responder : undefined, now)),
        );
        return await buildOcspResponse({
          responderCertificate: responder.certificate,
          signer: await deps.token.signer(responder.issuingCa),
          producedAt: now,
          responses,
          ...(parsed.nonce ? { nonce: parsed.nonce } : {}),
        });
      } catch (e) {
        console.error(`[ocsp] ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        return ocspError('internalError');
      }
    },
  };
}

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
    return new Response(der, {
      headers: { 'content-type': 'application/pkix-crl', 'cache-control': 'max-age=60' },
    });
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

function ocspReply(body: Uint8Array, status = 200): Response {
  return new Response(body, { status, headers: { 'content-type': 'application/ocsp-response' } });
}

/** Names compare by their DER; a client that re-encoded the Name is matched by pkijs's comparison. */
function sameName(ours: Uint8Array, theirs: Uint8Array, theirsHex: string): boolean {
  if (Buffer.from(ours).toString('hex') === theirsHex) return true;
  try {
    return pkijs.RelativeDistinguishedNames.fromBER(ours).isEqual(
      pkijs.RelativeDistinguishedNames.fromBER(theirs),
    );
  } catch {
    return false;
  }
}
