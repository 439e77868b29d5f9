/**
 * Jamf Pro. Jamf asks us for a challenge per SCEP payload (SCEPChallenge webhook, api/mdm-routes.ts),
 * so the challenge is a one-time challenge consumed here; then the device must be in Jamf's
 * inventory (computers or mobile devices), and the identity is Jamf's inventory record, not what the
 * CSR says: device id (serial or UDID, per profile), serial, UDID and name as Jamf knows them.
 * Wire contract: shared/reference/contracts.md (Jamf Pro).
 *
 * Lookup rule: the CSR subject's serialNumber attribute (2.5.4.5) when present, else its CN, is the
 * serial searched. Jamf's SCEP payload usually sets Subject to CN=$SERIALNUMBER; a profile that
 * names devices otherwise must add serialNumber=$SERIALNUMBER to the subject.
 */
import { z } from 'zod';
import { secretFromEnv } from '../../config/load.js';
import type { MdmVerifierConfig } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { type IdentityAttributes, vouchedIdentity } from '../../pki/admission/identity.js';
import { type CsrInfo, parseCsr } from '../../pki/x509/csr.js';
import type { MdmVerdict } from '../../workflows/activities.js';
import { SUBJECT_OID, subjectValues } from './csr-subject.js';
import { DEFAULT_TIMEOUT_MS, isSuccess, jsonBody, MdmUnavailableError, send, statusError } from './http.js';
import { ClientCredentialsToken } from './oauth.js';
import { consumeOneTimeChallenge } from './one-time-challenge.js';
import type { MdmVerifier } from './verifier.js';

export type JamfConfig = Extract<MdmVerifierConfig, { type: 'jamf' }>;

const text = z.string().trim().min(1).max(256).nullish();
/** A computers-inventory or mobile-devices/detail result: the fields we read, wherever Jamf puts them. */
const inventoryRecord = z
  .object({
    udid: text,
    serialNumber: text,
    name: text,
    general: z.object({ name: text, displayName: text, udid: text }).loose().nullish(),
    hardware: z.object({ serialNumber: text }).loose().nullish(),
  })
  .loose();
const searchAnswer = z
  .object({ totalCount: z.number().int().min(0), results: z.array(inventoryRecord).default([]) })
  .loose();

/** What Jamf's record says about the device. */
function recordAttributes(record: z.infer<typeof inventoryRecord>): IdentityAttributes {
  const attributes: IdentityAttributes = {};
  const serialNumber = record.hardware?.serialNumber ?? record.serialNumber;
  const udid = record.udid ?? record.general?.udid;
  const name = record.general?.name ?? record.general?.displayName ?? record.name;
  if (serialNumber) attributes.serialNumber = serialNumber;
  if (udid) attributes.udid = udid;
  if (name) attributes.name = name;
  return attributes;
}

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
    client: { kind: 'secret', secret: secretFromEnv(cfg.clientSecretEnv, opts.env) },
    timeoutMs,
    what: 'Jamf OAuth',
  });

  /** The first record of a Jamf inventory search; 401 forgets the token so the retry gets a fresh one. */
  const search = async (
    path: string,
    filter: string,
    what: string,
  ): Promise<z.infer<typeof inventoryRecord> | undefined> => {
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
    if (answer.data.totalCount === 0) return undefined;
    // Jamf counted the device but sent no record: not a decision about the device.
    const [record] = answer.data.results;
    if (!record) throw new MdmUnavailableError(`${what}: totalCount ${answer.data.totalCount} but no result`);
    return record;
  };
  const identityFrom = (record: z.infer<typeof inventoryRecord>, searched: string): MdmVerdict => {
    const attributes = recordAttributes(record);
    const deviceId = attributes[cfg.deviceIdFrom];
    if (!deviceId)
      return {
        verdict: 'rejected',
        reason: `Jamf's record of ${searched} has no ${cfg.deviceIdFrom} to name the device by`,
      };
    const identity = vouchedIdentity('jamf', deviceId, attributes);
    return typeof identity === 'string'
      ? { verdict: 'rejected', reason: identity }
      : { verdict: 'approved', identity };
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
      const computer = await search(
        '/api/v1/computers-inventory?section=GENERAL&section=HARDWARE',
        `hardware.serialNumber==${filterValue}`,
        'Jamf computers-inventory',
      );
      if (computer) return identityFrom(computer, serial);
      const mobile = await search(
        '/api/v2/mobile-devices/detail',
        `serialNumber==${filterValue}`,
        'Jamf mobile-devices',
      );
      if (mobile) return identityFrom(mobile, serial);
      return { verdict: 'rejected', reason: `device ${serial} not in Jamf inventory` };
    },
  };
}

/** An RSQL quoted string: the serial comes from the device, it must not extend the filter. */
function rsqlQuote(value: string): string {
  return `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}
