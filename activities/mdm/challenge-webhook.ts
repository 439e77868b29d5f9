/**
 * A step-ca compatible SCEPCHALLENGE webhook: an external service (the customer's own MDM glue)
 * decides from the challenge and the CSR. Requests are signed with HMAC-SHA256 so the service can
 * tell they come from us. Wire contract: shared/reference/contracts.md (step-ca).
 *
 * The allow answer vouches for the device it names in `data` (step-ca's template data):
 * `{"allow": true, "data": {"deviceId": "...", "commonName"?, "serialNumber"?, "udid"?, "name"?,
 * "upn"?, "email"?: [], "dns"?: [], "uri"?: []}}`. An allow without `data.deviceId` vouches for
 * nobody: the request names itself, as with a static challenge.
 */
import { createHmac } from 'node:crypto';
import { z } from 'zod';
import { secretFromEnv } from '../../config/load.js';
import type { MdmVerifierConfig } from '../../config/profile-types.js';
import { requesterChosenIdentity, vouchedIdentity } from '../../pki/admission/identity.js';
import { type CsrInfo, parseCsr } from '../../pki/x509/csr.js';
import type { MdmVerdict } from '../../workflows/activities.js';
import { SUBJECT_OID, subjectAttributes } from './csr-subject.js';
import { DEFAULT_TIMEOUT_MS, isSuccess, jsonBody, MdmUnavailableError, send, statusError } from './http.js';
import type { MdmVerifier } from './verifier.js';

export type ChallengeWebhookConfig = Extract<MdmVerifierConfig, { type: 'challenge-webhook' }>;

const text = z.string().trim().min(1).max(256);
const texts = z.array(z.string().trim().min(1).max(512)).max(50);
/** The identity an allow answer vouches for. */
const vouchedData = z
  .object({
    deviceId: text,
    commonName: text.optional(),
    serialNumber: text.optional(),
    udid: text.optional(),
    name: text.optional(),
    upn: text.optional(),
    email: texts.optional(),
    dns: texts.optional(),
    uri: texts.optional(),
  })
  .loose();

const webhookAnswer = z.object({
  allow: z.boolean(),
  data: z.record(z.string(), z.unknown()).nullish(),
  error: z.object({ code: z.string().nullish(), message: z.string().nullish() }).loose().nullish(),
});

export function challengeWebhookVerifier(
  cfg: ChallengeWebhookConfig,
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): MdmVerifier {
  const timeoutMs = opts.timeoutMs ?? cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const secret = Buffer.from(secretFromEnv(cfg.secretEnv, opts.env), 'base64');
  if (secret.length === 0) throw new Error(`${cfg.secretEnv} must hold a base64 HMAC secret`);
  const what = 'challenge webhook';

  return {
    async verify({ profile, transactionId, csr }): Promise<MdmVerdict> {
      const parsed = await parseCsr(csr);
      if (!parsed.ok) return { verdict: 'rejected', reason: `CSR unreadable: ${parsed.message}` };
      const body = JSON.stringify({
        timestamp: new Date().toISOString(),
        provisionerName: profile,
        // Sent even when empty, as step-ca does: the webhook may decide on the CSR alone.
        scepChallenge: parsed.csr.challengePassword ?? '',
        scepTransactionID: transactionId,
        x509CertificateRequest: certificateRequestJson(parsed.csr),
      });
      const reply = await send(
        cfg.url,
        {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json',
            'x-smallstep-webhook-id': cfg.webhookId,
            // Over the exact bytes sent: the receiver recomputes it before parsing.
            'x-smallstep-signature': createHmac('sha256', secret).update(body, 'utf8').digest('hex'),
          },
          body,
        },
        { timeoutMs, what },
      );
      // Any non-2xx (a 401 for a signature it refused included) is not a decision about the device.
      if (!isSuccess(reply.status)) throw statusError(reply, what);
      const answer = webhookAnswer.safeParse(jsonBody(reply, what));
      if (!answer.success) throw new MdmUnavailableError(`${what}: answer carries no boolean "allow"`);
      if (answer.data.allow) {
        const vouched = vouchedData.safeParse(answer.data.data ?? {});
        const identity = vouched.success
          ? vouchedIdentity('challenge-webhook', vouched.data.deviceId, vouched.data)
          : requesterChosenIdentity(parsed.csr.commonName);
        if (typeof identity === 'string') return { verdict: 'rejected', reason: identity };
        return { verdict: 'approved', identity };
      }
      const message = answer.data.error?.message?.trim();
      return {
        verdict: 'rejected',
        reason: message ? `webhook denied: ${message}` : 'webhook denied the request',
      };
    },
  };
}

/** The CSR the way step-ca's x509util.CertificateRequest marshals it (byte fields as base64). */
function certificateRequestJson(csr: CsrInfo) {
  const attributes = subjectAttributes(csr.subject);
  const all = (oid: string) => attributes.filter((a) => a.oid === oid).map((a) => a.value);
  const subject: Record<string, string | string[]> = {};
  const single = { commonName: SUBJECT_OID.commonName, serialNumber: SUBJECT_OID.serialNumber };
  for (const [key, oid] of Object.entries(single)) {
    const value = all(oid)[0];
    if (value !== undefined) subject[key] = value;
  }
  const multi = {
    country: SUBJECT_OID.country,
    organization: SUBJECT_OID.organization,
    organizationalUnit: SUBJECT_OID.organizationalUnit,
    locality: SUBJECT_OID.locality,
    province: SUBJECT_OID.province,
    streetAddress: SUBJECT_OID.streetAddress,
    postalCode: SUBJECT_OID.postalCode,
  };
  for (const [key, oid] of Object.entries(multi)) {
    const values = all(oid);
    if (values.length > 0) subject[key] = values;
  }
  return {
    subject,
    dnsNames: csr.subjectAltNames.dns,
    emailAddresses: csr.subjectAltNames.email,
    ipAddresses: csr.subjectAltNames.ip,
    uris: csr.subjectAltNames.uri,
    publicKeyAlgorithm: publicKeyAlgorithm(csr.publicKey),
    publicKey: Buffer.from(csr.subjectPublicKeyInfo).toString('base64'),
    raw: Buffer.from(csr.der).toString('base64'),
  };
}

/** Go's x509.PublicKeyAlgorithm names, which step-ca webhooks see. */
function publicKeyAlgorithm(key: CsrInfo['publicKey']): string {
  if (key.algorithm === 'rsa') return 'RSA';
  if (key.algorithm === 'ec') return 'ECDSA';
  return key.oid === '1.3.101.112' ? 'Ed25519' : key.oid;
}
