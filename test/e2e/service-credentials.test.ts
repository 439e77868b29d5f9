/**
 * Passwordless service identity (issue 13): the Intune adapter authenticates to (fake) Entra ID with
 * a client certificate whose key is in the data token, and the product rotates that certificate
 * itself. The fake Entra verifies every client assertion's signature against the certificates
 * registered on the app, as the real one does.
 */
import { randomUUID } from 'node:crypto';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signClientAssertion } from '../../activities/mdm/client-assertion.js';
import { ClientCredentialsToken } from '../../activities/mdm/oauth.js';
import { serviceKeyLabel } from '../../activities/service-credentials/registry.js';
import { type Profile, profileSchema } from '../../config/profile-types.js';
import { certificates, serviceCredentials } from '../../db/schema.js';
import { fromPem } from '../../pki/pem.js';
import { certificateInfo } from '../../pki/x509/certificate.js';
import { registeredSignal, serviceCredentialWorkflowId } from '../../workflows/definitions.js';
import { thumbprintS256 } from '../fakes/client-assertion-check.js';
import { type FakeIntune, GRAPH_SCOPE, startFakeIntune } from '../fakes/intune.js';
import { startWebhookReceiver, type WebhookReceiver } from '../fakes/webhook-receiver.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { scepclientEnroll } from '../support/scep-clients.js';
import { waitForWorkflows } from '../support/temporal.js';
import { until } from '../support/until.js';

const tenant = { tenantId: 'contoso', clientId: 'pki-app' };
const HOOK_SECRET = 'service-credential-hook-secret';
// Keys stay in the run's SoftHSM token: a name of this run's own.
const NAME = `intune-${randomUUID().slice(0, 8)}`;
const PROFILE = 'intune-cert';
// Certificates live 90 s and are renewed 70 s before they run out: a rotation 20 s after each issue.
const VALIDITY = 90;
const RENEW_BEFORE = 70;
const OVERLAP = 6;

let intune: FakeIntune;
let hook: WebhookReceiver;
let pipeline: Pipeline;

beforeAll(async () => {
  // The app registration accepts certificates only: no client secret exists.
  intune = await startFakeIntune(tenant);
  // Access tokens live 2 s: every enrollment below asks the token endpoint again.
  intune.knobs.tokenLifetimeSeconds = 2;
  hook = await startWebhookReceiver({ secret: HOOK_SECRET });
  Object.assign(process.env, { SVC_HOOK_SECRET: HOOK_SECRET });
  pipeline = await startPipeline({
    configure: (config) => {
      const base = config.profiles[0]!;
      const profile: Profile = profileSchema.parse({
        ...base,
        name: PROFILE,
        mdm: {
          type: 'intune',
          ...tenant,
          clientCertificate: {
            name: NAME,
            validitySeconds: VALIDITY,
            renewBeforeSeconds: RENEW_BEFORE,
            overlapSeconds: OVERLAP,
          },
          authority: `${intune.url}/`,
          graphUrl: intune.url,
        },
        ca: { ...base.ca, keyLabel: `issuing-ca/${PROFILE}`, subject: [['CN', `Issuing CA ${PROFILE}`]] },
        notifications: { webhooks: [{ url: hook.url, secretEnv: 'SVC_HOOK_SECRET' }] },
        escalation: {
          maxAttempts: 20,
          initialRetrySeconds: 0.2,
          maxRetryIntervalSeconds: 1,
          deadlineSeconds: 600,
        },
      });
      config.profiles.push(profile);
    },
  });
}, 180_000);
afterAll(async () => {
  await pipeline?.stop();
  await Promise.all([intune?.close(), hook?.close()]);
});

const rowOf = async (generation: number) =>
  (
    await pipeline.db.db
      .select()
      .from(serviceCredentials)
      .where(and(eq(serviceCredentials.name, NAME), eq(serviceCredentials.generation, generation)))
  )[0];

/** The registration_needed event of a generation, as the operator's webhook received it. */
const registrationEvent = (generation: number) =>
  until(`the registration_needed event of #${generation}`, async () =>
    hook.deliveries
      .filter((d) => d.verified)
      .map((d) => JSON.parse(d.body))
      .find((e) => e.type === 'service_credential.registration_needed' && e.data.generation === generation),
  );

const enroll = async (cn: string) => {
  const run = await scepclientEnroll({
    url: `${pipeline.url}/scep/${PROFILE}`,
    challenge: 'intune-made',
    cn,
  });
  expect(run.code, run.output).toBe(0);
  const issued = await pipeline.db.db.select().from(certificates).where(eq(certificates.deviceId, cn));
  expect(issued).toHaveLength(1);
};

const workflow = () => pipeline.client.workflow.getHandle(serviceCredentialWorkflowId(NAME));

describe('Intune with a certificate credential rotated by the product', () => {
  let first: Uint8Array;
  let second: Uint8Array;

  it('makes the first certificate, asks the operator to register it, then enrolls with it', async () => {
    const event = await registrationEvent(1);
    first = fromPem(event.data.certificatePem);
    expect(event.data.x5tS256).toBe(thumbprintS256(first));
    // Certified by the profile's internal CA, for the key in the data token.
    const issuedBy = certificateInfo(first);
    expect(issuedBy.issuer).toContain(`Issuing CA ${PROFILE}`);
    expect((await rowOf(1))?.state).toBe('pending-registration');
    await waitForWorkflows(
      pipeline.client,
      `WorkflowId = '${serviceCredentialWorkflowId(NAME)}' AND PkiStatus = 'RegistrationNeeded'`,
      1,
    );
    expect(await pipeline.tokens.get('data').publicKey(serviceKeyLabel(NAME, 1))).toBeDefined();

    // The operator uploads it to the app registration and says so.
    intune.registeredCertificates.push(first);
    await workflow().signal(registeredSignal, { generation: 1, by: 'test operator' });
    await until('#1 active', async () => ((await rowOf(1))?.state === 'active' ? true : undefined));

    await enroll('svc-before-rotation');
    const used = intune.tokensIssued.map((t) => t.credential);
    expect(used.length).toBeGreaterThan(0);
    expect(new Set(used)).toEqual(new Set([thumbprintS256(first)]));
    expect(intune.assertionRefusals).toEqual([]);
  });

  it('rotates before expiry: the new certificate is used once registered, the old one overlaps then retires', async () => {
    // Nobody asked: the workflow renews RENEW_BEFORE seconds before #1 runs out.
    const event = await registrationEvent(2);
    second = fromPem(event.data.certificatePem);
    expect(thumbprintS256(second)).not.toBe(thumbprintS256(first));
    // At its renewal point (notAfter - renewBefore), not before it, and while #1 is still valid.
    const renewedAt = Date.parse(event.at);
    const firstNotAfter = certificateInfo(first).notAfter.getTime();
    expect(renewedAt).toBeGreaterThanOrEqual(firstNotAfter - (RENEW_BEFORE + 1) * 1000);
    expect(renewedAt).toBeLessThan(firstNotAfter);
    // Until the operator registers it, the adapter keeps signing with #1.
    expect((await rowOf(1))?.state).toBe('active');

    intune.registeredCertificates.push(second); // both registered: the overlap window
    await workflow().signal(registeredSignal, { generation: 2 });
    await until('#2 active', async () => ((await rowOf(2))?.state === 'active' ? true : undefined));
    expect((await rowOf(1))?.state).toBe('retiring');

    // Adapters re-read the active credential within 5 s; tokens live 2 s.
    await new Promise((r) => setTimeout(r, 6_000));
    const from = intune.tokensIssued.length;
    await enroll('svc-after-rotation');
    const used = intune.tokensIssued.slice(from).map((t) => t.credential);
    expect(used.length).toBeGreaterThan(0);
    expect(new Set(used)).toEqual(new Set([thumbprintS256(second)]));

    // After the overlap the old one is retired, and the operator is told to remove it.
    await until('#1 retired', async () => ((await rowOf(1))?.state === 'retired' ? true : undefined), 30_000);
    await until('the retired event of #1', async () =>
      hook.deliveries
        .map((d) => JSON.parse(d.body))
        .find((e) => e.type === 'service_credential.retired' && e.data.generation === 1),
    );
  });

  it('keeps enrolling once the old certificate is withdrawn from the app registration', async () => {
    intune.registeredCertificates.splice(0, intune.registeredCertificates.length, second);
    await new Promise((r) => setTimeout(r, 2_500)); // the access token of #2's time runs out
    const from = intune.tokensIssued.length;
    await enroll('svc-old-withdrawn');
    expect(intune.tokensIssued.slice(from).every((t) => t.credential === thumbprintS256(second))).toBe(true);
    expect(intune.assertionRefusals).toEqual([]);

    // The withdrawn certificate's key is refused by the fake: its check is real.
    const oldKey = await pipeline.tokens.get('data').signer(serviceKeyLabel(NAME, 1));
    const stale = new ClientCredentialsToken({
      tokenUrl: `${intune.url}/${tenant.tenantId}/oauth2/v2.0/token`,
      clientId: tenant.clientId,
      client: {
        kind: 'assertion',
        assertion: (audience) =>
          signClientAssertion({ clientId: tenant.clientId, audience, certificate: first, signer: oldKey }),
      },
      scope: GRAPH_SCOPE,
      timeoutMs: 5_000,
      what: 'stale credential',
    });
    await expect(stale.get()).rejects.toThrow(/401/);
    expect(intune.assertionRefusals.map((r) => r.code)).toEqual(['AADSTS700027']);
  });
});
