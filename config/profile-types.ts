/**
 * The PKI configuration (config/pki.json): its schema, checked at start-up, and the types the code
 * uses, derived from it. Secrets are named by environment variable (`...Env`), never written inline,
 * so the file can be committed.
 */
import { z } from 'zod';
import { templateProblems } from '../pki/admission/subject-template.js';

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

const certificateTemplate = z
  .object({
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
    /**
     * The certificate's subject, one attribute per RDN, values with {{device.<attribute>}} placeholders
     * filled from the verified identity (pki/admission/). Never copied from the CSR.
     */
    subject: z
      .array(z.tuple([z.string().min(1), z.string().min(1).max(256)]))
      .min(1)
      .default([['CN', '{{device.id}}']]),
    /** SAN entries, same placeholders; a list attribute ({{device.dns}}) gives one entry per value. */
    subjectAltNames: z
      .object({
        dns: z.array(z.string().min(1).max(256)).default([]),
        email: z.array(z.string().min(1).max(256)).default([]),
        uri: z.array(z.string().min(1).max(512)).default([]),
      })
      .default({ dns: [], email: [], uri: [] }),
    /** Subject attributes, SANs or a CA request the CSR asks for beyond the template: dropped or refused. */
    csrExtras: z.enum(['drop', 'refuse']).default('drop'),
    /**
     * A request nobody vouched for (static challenge, unbound one-time challenge) may name itself: its
     * CN becomes the device id. For development; every other attribute still comes from the template.
     */
    requesterChosenCommonName: z.boolean().default(false),
  })
  .superRefine((template, ctx) => {
    for (const message of templateProblems(template)) ctx.addIssue({ code: 'custom', message });
  });

/**
 * A service credential (workflows/service-credential.ts): a key in the data token (labels
 * `service/<name>/<generation>`), certified by an internal profile's CA, renewed by the product
 * `renewBeforeSeconds` before it expires; the identity provider is told of each new certificate by an
 * operator, and the previous one stays usable `overlapSeconds` after the switch.
 */
export const serviceCredential = z.object({
  /** Names the workflow (`service/<name>/credential`) and the key labels. */
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lower-case letters, digits and dashes'),
  /** The profile whose (local HSM) CA signs the credential certificate; default: the profile itself. */
  profile: z.string().min(1).optional(),
  validitySeconds: z
    .number()
    .int()
    .min(60)
    .max(3 * 365 * 86400)
    .default(365 * 86400),
  renewBeforeSeconds: z
    .number()
    .int()
    .min(10)
    .max(365 * 86400)
    .default(30 * 86400),
  overlapSeconds: z
    .number()
    .int()
    .min(0)
    .max(90 * 86400)
    .default(7 * 86400),
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
  z
    .object({
      type: z.literal('intune'),
      /**
       * Which attribute of the request Intune validated names the device: its CN, or the SAN URI
       * IntuneDeviceId://<id> that Intune profiles put there.
       */
      deviceIdFrom: z.enum(['commonName', 'intuneDeviceId']).default('commonName'),
      tenantId: z.string().min(1),
      clientId: z.string().min(1),
      /** A client secret (environment variable). Supported; a certificate credential is recommended. */
      clientSecretEnv: envName.optional(),
      /** A certificate credential whose key never leaves the HSM, rotated by the product. */
      clientCertificate: serviceCredential.optional(),
      authority: httpUrl.default('https://login.microsoftonline.com/'),
      graphUrl: httpUrl.default('https://graph.microsoft.com'),
      timeoutMs,
    })
    .refine((mdm) => (mdm.clientSecretEnv === undefined) !== (mdm.clientCertificate === undefined), {
      message: 'intune needs exactly one of clientSecretEnv and clientCertificate',
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
    /** Which field of Jamf's inventory record is the device id. */
    deviceIdFrom: z.enum(['serialNumber', 'udid']).default('serialNumber'),
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
  /** Who may replace a device's certificate, and how a revoked or removed device comes back. */
  admission: z
    .object({
      /**
       * A new enrollment nobody vouched for (static or unbound one-time challenge), for a device that
       * holds a valid certificate and not signed by it: waits for an operator (`approval`, PENDING
       * meanwhile) or is refused.
       */
      takeover: z.enum(['approval', 'refuse']).default('approval'),
      /** A revoked or removed device gets a certificate again after an operator `readmit`, or also after a fresh MDM-vouched enrollment. */
      readmission: z.enum(['operator', 'mdm-vouched']).default('operator'),
    })
    .default({ takeover: 'approval', readmission: 'operator' }),
  /** Production refuses a static-challenge profile unless it says this (PKI_ENV=production). */
  allowStaticChallenge: z.boolean().default(false),
  /** Accept single-DES SCEP envelopes (micromdm scepclient 2.1.0 speaks nothing else); refused otherwise. */
  legacyCiphers: z.boolean().default(false),
  /**
   * The signed device-removed webhook (POST /mdm/<profile>/device-removed, HMAC with timestamp and
   * delivery id): the integration's own secret. Jamf profiles use their Basic webhook credentials.
   */
  deviceRemovedWebhook: z.object({ secretEnv: envName }).optional(),
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

/** Delivery of webhook events and e-mail from the outbox (activities/notify/). */
const events = z
  .object({
    /** An event not delivered this long after it was recorded becomes a dead letter (operators redeliver). */
    deadLetterAfterSeconds: z
      .number()
      .int()
      .min(1)
      .max(30 * 86400)
      .default(86400),
    /** Back-off between attempts doubles from 1 s up to this. */
    maxRetryIntervalSeconds: z.number().int().min(1).max(86400).default(600),
    /** One delivery attempt may take this long. */
    timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
  })
  .default({ deadLetterAfterSeconds: 86400, maxRetryIntervalSeconds: 600, timeoutMs: 10_000 });

/** A time zone the runtime knows (IANA name, e.g. Europe/Paris, or UTC). */
const timeZone = z.string().refine((name) => {
  try {
    new Intl.DateTimeFormat('en', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}, 'must be an IANA time zone name, e.g. Europe/Paris or UTC');

/** The daily report (DESIGN.md "Reports"): schedule `reports/daily`, its figures and who gets it. */
const reports = z
  .object({
    /** Local time of day the schedule runs, HH:MM (24 h) in timeZone. */
    time: z
      .string()
      .regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM (24 h)')
      .default('06:00'),
    timeZone: timeZone.default('UTC'),
    /** "Renew soon": the device's newest valid certificate runs out within this many days. */
    renewSoonDays: z.number().int().min(1).max(365).default(7),
    /** Earlier reports shown in the trend (charts and JSON). */
    trendReports: z.number().int().min(1).max(90).default(14),
    /** `report.daily` webhooks (signed like every event) and the HTML e-mail's recipients. */
    notifications,
  })
  .default({
    time: '06:00',
    timeZone: 'UTC',
    renewSoonDays: 7,
    trendReports: 14,
    notifications: { webhooks: [] },
  });

/** The key inventory's thresholds (activities/keys/): `key.age_exceeded` and `key.expiring` events. */
const keys = z
  .object({
    /** A key older than this (CKA_START_DATE, else first seen) raises `key.age_exceeded` once. */
    maxAgeDays: z
      .number()
      .min(0)
      .default(3 * 365),
    /** A key whose certificate ends within this many days raises `key.expiring` once per certificate. */
    expiryWarningDays: z.number().min(0).default(60),
    /** How often each process lists its tokens into the inventory. */
    refreshSeconds: z.number().int().min(5).max(86400).default(300),
    /** Who gets the key events (webhooks; e-mail too: they need an operator). */
    notifications,
  })
  .default({
    maxAgeDays: 3 * 365,
    expiryWarningDays: 60,
    refreshSeconds: 300,
    notifications: { webhooks: [] },
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
    events,
    reports,
    keys,
    /**
     * Operators authenticate to the HTTPS operator listener with client certificates this product
     * issues under this profile (a local CA; a one-time challenge bound to the operator's name);
     * its CA also certifies that listener's TLS server certificate.
     */
    operators: z.object({ profile: z.string().min(1) }).optional(),
  })
  .superRefine((config, ctx) => {
    if (config.operators) {
      const profile = config.profiles.find((p) => p.name === config.operators!.profile);
      if (profile?.ca.type !== 'local-hsm')
        ctx.addIssue({
          code: 'custom',
          path: ['operators', 'profile'],
          message: `must name a profile of this file with a local-hsm CA (${config.operators.profile} is not one)`,
        });
    }
    const seen = new Set<string>();
    const credentials = new Set<string>();
    config.profiles.forEach((p, i) => {
      const credential = p.mdm.type === 'intune' ? p.mdm.clientCertificate : undefined;
      if (credential) {
        const issuer = config.profiles.find((q) => q.name === (credential.profile ?? p.name));
        if (issuer?.ca.type !== 'local-hsm')
          ctx.addIssue({
            code: 'custom',
            path: ['profiles', i, 'mdm', 'clientCertificate', 'profile'],
            message: `must name a profile of this file with a local-hsm CA (${credential.profile ?? p.name} is not one)`,
          });
        if (credential.renewBeforeSeconds >= credential.validitySeconds)
          ctx.addIssue({
            code: 'custom',
            path: ['profiles', i, 'mdm', 'clientCertificate', 'renewBeforeSeconds'],
            message: 'must be shorter than validitySeconds',
          });
        if (credentials.has(credential.name))
          ctx.addIssue({
            code: 'custom',
            path: ['profiles', i, 'mdm', 'clientCertificate', 'name'],
            message: `duplicates the service credential ${credential.name}`,
          });
        credentials.add(credential.name);
      }
      if (seen.has(p.name))
        ctx.addIssue({ code: 'custom', path: ['profiles', i, 'name'], message: `duplicates ${p.name}` });
      seen.add(p.name);
      // A static challenge vouches for nobody: the profile must say it accepts self-named devices.
      if (p.mdm.type === 'static-challenge' && !p.template.requesterChosenCommonName)
        ctx.addIssue({
          code: 'custom',
          path: ['profiles', i, 'template', 'requesterChosenCommonName'],
          message:
            'a static challenge vouches for no device: set true (development only) or use an MDM verifier',
        });
    });
  });

export type KeyUsageName = z.infer<typeof keyUsageName>;
export type CertificateTemplate = z.infer<typeof certificateTemplate>;
export type MdmVerifierConfig = z.infer<typeof mdmVerifier>;
export type CaConfig = z.infer<typeof caConfig>;
export type LocalCaConfig = Extract<CaConfig, { type: 'local-hsm' }>;
export type NotificationConfig = z.infer<typeof notifications>;
export type EscalationConfig = z.infer<typeof escalation>;
export type EventsConfig = z.infer<typeof events>;
export type ReportsConfig = z.infer<typeof reports>;
export type KeysConfig = z.infer<typeof keys>;
export type Profile = z.infer<typeof profileSchema>;
export type ServiceCredentialConfig = z.infer<typeof serviceCredential>;
export type RootCaConfig = PkiConfig['rootCa'];
export type PkiConfig = z.infer<typeof pkiConfigSchema>;
