/**
 * Revocation status for relying parties, read from the database: the latest CRL of each of our
 * issuing CAs (signed by the CA worker, never here) and OCSP answers signed by the CA's delegated
 * responder, whose key is in the RA token (RFC 6960 4.2.2.2). The same lookups answer SCEP GetCert
 * and GetCRL.
 */

import { and, eq } from 'drizzle-orm';
import * as pkijs from 'pkijs';
import { latestCrl } from '../../activities/ca/local-hsm/crl.js';
import { type GenerationReader, generationReader } from '../../activities/ca/local-hsm/generations.js';
import type { PkiConfig } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { certificates } from '../../db/schema.js';
import {
  buildOcspResponse,
  certIdNamesIssuer,
  type OcspCertRequest,
  type OcspSingleAnswer,
  ocspError,
  parseOcspRequest,
} from '../../pki/ocsp.js';
import { rawSubject } from '../../pki/x509/certificate.js';
import { revocationReasonOf, unsignedHex } from '../../pki/x509/crl.js';
import { componentLogger } from '../../runtime/log.js';
import type { ProfileRa } from '../ra.js';
import type { Responder } from './ocsp-responders.js';

/** How long an OCSP answer may be cached: status comes from the database at each request. */
export const OCSP_VALIDITY_MS = 60 * 60 * 1000;

export interface RevocationServiceDeps {
  config: PkiConfig;
  db: Database;
  /** The issuing CA certificates, as the SCEP endpoint holds them. */
  ras: Map<string, ProfileRa>;
  /** The profiles' CA generations (rotation); a short-lived cache over the database by default. */
  generations?: GenerationReader;
  /** The delegated responder of an issuing CA (api/revocation/ocsp-responders.ts); none: tryLater. */
  responderOf?: (issuingCa: string) => Promise<Responder | undefined>;
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
  /** The latest CRL (DER) of an issuing CA, as the CA worker last signed it. */
  latestCrl(issuingCa: string): Promise<Uint8Array | undefined>;
  /** The issuing CA key label of a profile with a local CA: its configured CA (generation 1). */
  issuingCaOfProfile(profile: string): string | undefined;
  /** The key label of one generation of a profile's CA (rotation), if it exists. */
  issuingCaOfGeneration(profile: string, generation: number): Promise<string | undefined>;
  /** A complete OCSP answer (DER OCSPResponse) to a DER OCSPRequest. Never throws. */
  answerOcsp(request: Uint8Array): Promise<Uint8Array>;
}

export function revocationService(deps: RevocationServiceDeps): RevocationService {
  const generations = deps.generations ?? generationReader(deps.db);
  const configured: IssuingCa[] = [];
  for (const profile of deps.config.profiles) {
    const ra = deps.ras.get(profile.name);
    if (profile.ca.type !== 'local-hsm' || !ra) continue;
    configured.push({
      profile: profile.name,
      issuingCa: profile.ca.keyLabel,
      certificate: ra.issuingCertificate,
      subject: rawSubject(ra.issuingCertificate),
    });
  }

  /**
   * Every CA generation that answers for its certificates, newest first: the configured CA until a
   * rotation recorded generations, then each one not yet destroyed (an old CA answers OCSP and
   * GetCert until its certificates are gone).
   */
  const issuingCas = async (): Promise<IssuingCa[]> => {
    const all: IssuingCa[] = [];
    for (const ca of configured) {
      const rows = await generations(ca.profile);
      if (rows.length === 0) {
        all.push(ca);
        continue;
      }
      for (const row of [...rows].reverse())
        if (row.state === 'active' || row.state === 'deactivated')
          all.push({
            profile: ca.profile,
            issuingCa: row.keyLabel,
            certificate: row.certificate,
            subject: rawSubject(row.certificate),
          });
    }
    return all;
  };

  const latest = async (issuingCa: string): Promise<Uint8Array | undefined> =>
    (await latestCrl(deps.db, issuingCa))?.der;

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
      // Generations of one CA share its name: the serial tells which one issued it.
      for (const ca of await issuingCas()) {
        if (!sameName(ca.subject, issuer, issuerHex)) continue;
        const row = await certificateRow(ca.issuingCa, serialHex);
        if (row) return { der: row.der, issuingCa: ca.issuingCa, profile: row.profile };
      }
      return undefined;
    },
    latestCrl: latest,
    issuingCaOfProfile: (profile) => configured.find((ca) => ca.profile === profile)?.issuingCa,
    async issuingCaOfGeneration(profile, generation) {
      const rows = await generations(profile);
      if (rows.length === 0 && generation === 1)
        return configured.find((ca) => ca.profile === profile)?.issuingCa;
      return rows.find((r) => r.generation === generation)?.keyLabel;
    },
    async answerOcsp(der) {
      const parsed = parseOcspRequest(der);
      if (!parsed.ok) return ocspError('malformedRequest');
      try {
        const cas = await issuingCas();
        const matched = parsed.requests.map((r) => cas.find((ca) => certIdNamesIssuer(r, ca.certificate)));
        // One response, one signature: the responder of the first CA we know signs; CertIDs of
        // another CA in the same request are 'unknown' (its responder answers for that CA only).
        const ca = matched.find((c) => c !== undefined) ?? cas[0];
        if (!ca) return ocspError('unauthorized');
        const responder = await deps.responderOf?.(ca.issuingCa);
        // Not certified yet (a new key waits for the CA worker): the client asks again later.
        if (!responder) return ocspError('tryLater');
        const now = new Date();
        const responses = await Promise.all(
          parsed.requests.map((r, i) => statusOf(r, matched[i] === ca ? ca : undefined, now)),
        );
        return await buildOcspResponse({
          responderCertificate: responder.certificate,
          signer: responder.signer,
          producedAt: now,
          responses,
          ...(parsed.nonce ? { nonce: parsed.nonce } : {}),
        });
      } catch (e) {
        componentLogger('ocsp').error({ err: e }, 'OCSP answer failed: internalError');
        return ocspError('internalError');
      }
    },
  };
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
