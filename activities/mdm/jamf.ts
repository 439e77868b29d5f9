/**
 * Jamf Pro. Jamf asks us for a challenge per SCEP payload (SCEPChallenge webhook, api/mdm-routes.ts),
 * so the challenge is a one-time challenge consumed here; then the device must be in Jamf's
 * inventory (computers or mobile devices). Wire contract: shared/reference/contracts.md (Jamf Pro).
 *
 * Device serial rule: the CSR subject's serialNumber attribute (2.5.4.5) when present, else its CN.
 * Jamf's SCEP payload usually sets Subject to CN=$SERIALNUMBER; a profile that names devices
 * otherwise must add serialNumber=$SERIALNUMBER to the subject.
 */
import { z } from 'zod';
import { secretFromEnv } from '../../config/load.js';
import type { MdmVerifierConfig } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { type CsrInfo, parseCsr } from '../../pki/x509/csr.js';
import type { MdmVerdict } from '../types.js';
import { SUBJECT_OID, subjectValues } from './csr-subject.js';
import { DEFAULT_TIMEOUT_MS, isSuccess, jsonBody, MdmUnavailableError, send, statusError } from './http.js';
import { ClientCredentialsToken } from './oauth.js';
import { consumeOneTimeChallenge } from './one-time-challenge.js';
import type { MdmVerifier } from './verifier.js';

export type JamfConfig = Extract<MdmVerifierConfig, { type: 'jamf' }>;

const searchAnswer = z.object({ totalCount: z.number().int().min(0) }).loose();

/** The serial number Jamf knows the device by (see the rule above), or undefined. */
export function deviceSerialOf(csr: Pick<CsrInfo, 'subject' | 'commonName'>): string | undefined {
  const serial = subjectValues(csr.subject, SUBJECT_OID.serialNumber)[0] ?? csr.commonName;
  const trimmed = serial?.trim();
  return trimmed ? trimmed : undefined;
}

export function jamfVerifier(
  cfg: JamfConfig,
  db: Database,
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): MdmVerifier {
  const timeoutMs = opts.timeoutMs ?? cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const base = cfg.baseUrl.replace(/\/+$/, '');
  const token = new ClientCredentialsToken({
    tokenUrl: `${base}/api/oauth/token`,
    clientId: cfg.clientId,
    clientSecret: secretFromEnv(cfg.clientSecretEnv, opts.env),
    timeoutMs,
    what: 'Jamf OAuth',
  });

  /** totalCount of a Jamf inventory search; 401 forgets the token so the retry gets a fresh one. */
  const count = async (path: string, filter: string, what: string): Promise<number> => {
    const query = path.includes('?') ? '&' : '?';
    const reply = await send(
      `${base}${path}${query}filter=${encodeURIComponent(filter)}`,
      {
        method: 'GET',
        headers: { authorization: `Bearer ${await token.get()}`, accept: 'application/json' },
      },
      { timeoutMs, what },
    );
    if (reply.status === 401) token.drop();
    if (!isSuccess(reply.status)) throw statusError(reply, what);
    const answer = searchAnswer.safeParse(jsonBody(reply, what));
    if (!answer.success) throw new MdmUnavailableError(`${what}: answer carries no totalCount`);
    return answer.data.totalCount;
  };

  return {
    async verify(request): Promise<MdmVerdict> {
      const parsed = await parseCsr(request.csr);
      if (!parsed.ok) return { verdict: 'rejected', reason: `CSR unreadable: ${parsed.message}` };
      const serial = deviceSerialOf(parsed.csr);
      if (!serial)
        return { verdict: 'rejected', reason: 'CSR subject names no device serial (serialNumber or CN)' };

      // Challenge first: it is cheap and local, and an unknown challenge never costs a Jamf call. A
      // retry after an inventory outage finds the challenge used by this same transaction: approved.
      const challenge = await consumeOneTimeChallenge(db, request);
      if (challenge.verdict === 'rejected') return challenge;

      const filterValue = rsqlQuote(serial);
      const computers = await count(
        '/api/v1/computers-inventory?section=GENERAL&section=HARDWARE',
        `hardware.serialNumber==${filterValue}`,
        'Jamf computers-inventory',
      );
      if (computers > 0) return { verdict: 'approved' };
      const mobiles = await count(
        '/api/v2/mobile-devices/detail',
        `serialNumber==${filterValue}`,
        'Jamf mobile-devices',
      );
      if (mobiles > 0) return { verdict: 'approved' };
      return { verdict: 'rejected', reason: `device ${serial} not in Jamf inventory` };
    },
  };
}

/** An RSQL quoted string: the serial comes from the device, it must not extend the filter. */
function rsqlQuote(value: string): string {
  return `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}
