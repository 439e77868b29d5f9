/**
 * The PKI configuration (config/pki.json): its schema, checked at start-up, and the types the code
 * uses, derived from it. Secrets are named by environment variable (`...Env`), never written inline,
 * so the file can be committed.
 */
import { z } from 'zod';

const keyAlgorithm = z.enum(['rsa-2048', 'rsa-3072', 'rsa-4096', 'ec-p256', 'ec-p384']);
/** A distinguished name, one attribute per RDN: [['CN', 'Dev Issuing CA'], ['O', 'Device PKI']]. */
const rdns = z.array(z.tuple([z.string().min(1), z.string().min(1)])).min(1);
const envName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name');
const httpUrl = z.url({ protocol: /^https?$/ });
const timeoutMs = z.number().int().min(100).max(120_000).optional();

export const keyUsageName = z.enum([
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
]);

const certificateTemplate = z.object({
  validitySeconds: z
    .number()
    .int()
    .min(60)
    .max(3 * 365 * 86400),
  keyUsages: z.array(keyUsageName),
  /** Dotted OIDs, e.g. 1.3.6.1.5.5.7.3.2 (clientAuth). */
  extendedKeyUsages: z.array(z.string().regex(/^\d+(\.\d+)+$/, 'must be a dotted OID')),
  /** Smallest RSA modulus accepted in a CSR. */
  minRsaBits: z.number().int().min(1024).max(16384),
  /** EC curves accepted in a CSR. */
  allowedCurves: z.array(z.enum(['P-256', 'P-384'])),
  /** notBefore is set this far in the past: devices with a slow clock must not see "not yet valid". */
  backdateSeconds: z.number().int().min(0).max(86400).default(300),
});

/** Who vouches for a request (DESIGN.md: one adapter per MDM product). */
const mdmVerifier = z.discriminatedUnion('type', [
  z.object({ type: z.literal('static-challenge'), challenge: z.string().min(1) }),
  /** NDES-style: operators (or the Jamf webhook) create single-use challenges with an expiry. */
  z.object({
    type: z.literal('one-time-challenge'),
    ttlSeconds: z
      .number()
      .int()
      .min(60)
      .max(30 * 86400),
  }),
  z.object({
    type: z.literal('intune'),
    tenantId: z.string().min(1),
    clientId: z.string().min(1),
    clientSecretEnv: envName,
    authority: httpUrl.default('https://login.microsoftonline.com/'),
    graphUrl: httpUrl.default('https://graph.microsoft.com'),
    timeoutMs,
  }),
  z.object({
    type: z.literal('jamf'),
    baseUrl: httpUrl,
    clientId: z.string().min(1),
    clientSecretEnv: envName,
    /** Basic-auth credentials Jamf presents when it calls our SCEPChallenge webhook. */
    webhookUser: z.string().min(1),
    webhookPasswordEnv: envName,
    challengeTtlSeconds: z.number().int().min(60).max(86400),
    timeoutMs,
  }),
  /** step-ca compatible SCEPCHALLENGE webhook (HMAC-SHA256 signed, allow/deny). */
  z.object({
    type: z.literal('challenge-webhook'),
    url: httpUrl,
    /** Base64 HMAC secret. */
    secretEnv: envName,
    webhookId: z.string().min(1),
    timeoutMs,
  }),
]);

const caConfig = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('local-hsm'),
    /** Label of the issuing CA key and certificate in the token. */
    keyLabel: z.string().min(1),
    keyAlgorithm,
    subject: rdns,
  }),
  z.object({
    type: z.literal('globalsign-atlas'),
    /** e.g. https://emea.api.hvca.globalsign.com:8443/v2 */
    baseUrl: httpUrl,
    apiKeyEnv: envName,
    apiSecretEnv: envName,
    /** mTLS client certificate and key (PEM files), and optionally the CA bundle for the server. */
    clientCertFile: z.string().min(1),
    clientKeyFile: z.string().min(1),
    serverCaFile: z.string().min(1).optional(),
    /** Pause between GET /certificates/{serial} polls while Atlas answers 202. */
    pollIntervalMs: z.number().int().min(100).max(600_000).default(2000),
    timeoutMs,
  }),
]);

/** Where operators and integrations hear about enrollments. */
const notifications = z
  .object({
    webhooks: z.array(z.object({ url: httpUrl, secretEnv: envName })).default([]),
    email: z
      .object({
        smtpHost: z.string().min(1),
        smtpPort: z.number().int().min(1).max(65535),
        secure: z.boolean().default(false),
        userEnv: envName.optional(),
        passwordEnv: envName.optional(),
        from: z.string().min(3),
        to: z.array(z.string().min(3)).min(1),
      })
      .optional(),
  })
  .default({ webhooks: [] });

/** How long a step may fail for infrastructure reasons before an operator is asked. */
const escalation = z
  .object({
    /** Attempts per step (MDM, CA, storage, notification) before the workflow escalates. */
    maxAttempts: z.number().int().min(1).max(1000).default(5),
    /** Back-off between attempts: starts here, doubles, capped at maxRetryIntervalSeconds. */
    initialRetrySeconds: z.number().min(0.1).max(3600).default(1),
    maxRetryIntervalSeconds: z.number().min(0.1).max(86400).default(60),
    /** How long an escalated enrollment waits for `retry` or `reject` before it fails. */
    deadlineSeconds: z
      .number()
      .int()
      .min(1)
      .max(90 * 86400)
      .default(7 * 86400),
    /** One attempt of a step may take this long; a worker that died mid-step is noticed after it. */
    stepTimeoutSeconds: z.number().int().min(1).max(3600).default(30),
  })
  .default({
    maxAttempts: 5,
    initialRetrySeconds: 1,
    maxRetryIntervalSeconds: 60,
    deadlineSeconds: 7 * 86400,
    stepTimeoutSeconds: 30,
  });

export const profileSchema = z.object({
  /** Lower-case letters, digits and dashes: it appears in URLs and workflow ids. */
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lower-case letters, digits and dashes'),
  mdm: mdmVerifier,
  ca: caConfig,
  template: certificateTemplate,
  notifications,
  escalation,
  /** How long the API waits for the workflow before answering PENDING. */
  enrollmentWaitMs: z.number().int().min(0).max(120_000),
  /**
   * A renewal signed by the device's current, valid certificate skips the MDM check unless this is
   * set (then the request must also carry a valid challenge).
   */
  renewalRequiresMdm: z.boolean().default(false),
  /** Renewal point as a fraction of the lifetime (DESIGN.md: default 2/3). */
  renewalFraction: z
    .number()
    .min(0.1)
    .max(0.95)
    .default(2 / 3),
  lifecycle: z
    .object({
      /** Renew this long before notAfter instead of at renewalFraction. */
      renewalLeadSeconds: z.number().int().min(1).optional(),
      /** RenewalOverdue (operator escalation) this long before notAfter; default a tenth of the lifetime. */
      overdueMarginSeconds: z.number().int().min(1).optional(),
      /** After a renewal, revoke the old certificate (superseded) this much later; null keeps it valid. */
      supersededGraceSeconds: z.number().int().min(0).nullable().default(3600),
    })
    .default({ supersededGraceSeconds: 3600 }),
});

export const pkiConfigSchema = z
  .object({
    rootCa: z.object({
      keyLabel: z.string().min(1),
      keyAlgorithm,
      subject: rdns,
      validityDays: z.number().int().min(1),
    }),
    /** RA key: decrypts requests and signs CertReps. RSA, because SCEP key transport is RSA. */
    ra: z.object({
      keyLabel: z.string().min(1),
      keyAlgorithm: z.enum(['rsa-2048', 'rsa-3072']),
      subject: rdns,
    }),
    profiles: z.array(profileSchema).min(1),
  })
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.profiles.forEach((p, i) => {
      if (seen.has(p.name))
        ctx.addIssue({ code: 'custom', path: ['profiles', i, 'name'], message: `duplicates ${p.name}` });
      seen.add(p.name);
    });
  });

export type KeyUsageName = z.infer<typeof keyUsageName>;
export type CertificateTemplate = z.infer<typeof certificateTemplate>;
export type MdmVerifierConfig = z.infer<typeof mdmVerifier>;
export type CaConfig = z.infer<typeof caConfig>;
export type LocalCaConfig = Extract<CaConfig, { type: 'local-hsm' }>;
export type NotificationConfig = z.infer<typeof notifications>;
export type EscalationConfig = z.infer<typeof escalation>;
export type Profile = z.infer<typeof profileSchema>;
export type RootCaConfig = PkiConfig['rootCa'];
export type PkiConfig = z.infer<typeof pkiConfigSchema>;
