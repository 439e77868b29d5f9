import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker } from '@temporalio/worker';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { auditEvents, certificates } from '../../db/schema.js';
import { findSoftHsmLibrary } from '../../hsm/softhsm.js';
import { fromPem, toPem } from '../../pki/pem.js';
import { payloadCodecOf } from '../../runtime/services.js';
import { startProductProcess } from '../../scripts/product-process.js';
import { openssl } from '../support/openssl.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { exec, scepclientEnroll } from '../support/scep-clients.js';
import { waitForWorkflows } from '../support/temporal.js';
import { temporalCli } from '../support/temporal-cli.js';

/**
 * Key custody (DESIGN.md "Key domains"): the internet-facing API holds the RA and data tokens and
 * nothing else; CA keys sign and only sign, in the HSM host; Temporal stores only ciphertext; the
 * operator listener knows its operators by certificate; a forged request to the HSM host is refused.
 * Each claim is shown the way an attacker or an auditor would look: real processes, pkcs11-tool,
 * openssl, the temporal CLI.
 */
const stack = inject('stack');
const OPERATOR_TOKEN = 'custody-operator-token';
const bearer = { authorization: `Bearer ${OPERATOR_TOKEN}` };
const softhsmConf = () => join(stack.env.SOFTHSM_DIR!, 'softhsm2.conf');
let pipeline: Pipeline;
let work: string;
let rootFile: string;
let issuingFile: string;

beforeAll(async () => {
  process.env.OPERATOR_TOKEN = OPERATOR_TOKEN;
  process.env.OPERATOR_AUTH = 'token-or-certificate';
  pipeline = await startPipeline();
  work = mkdtempSync(join(tmpdir(), 'key-custody-'));
  const ra = pipeline.tokens.get('ra');
  rootFile = join(work, 'root.pem');
  issuingFile = join(work, 'issuing.pem');
  writeFileSync(rootFile, toPem((await ra.certificate(pipeline.config.rootCa.keyLabel))!));
  writeFileSync(issuingFile, toPem((await ra.certificate('issuing-ca/devices'))!));
});
afterAll(async () => {
  await pipeline?.stop();
});

/** Enrolls `cn` with scepclient; its completed enrollment workflow id and the CSR it sent (base64 DER). */
async function enrollCompleted(cn: string): Promise<{ workflowId: string; csrBase64: string }> {
  const run = await scepclientEnroll({ url: `${pipeline.url}/scep`, challenge: 'test-challenge', cn });
  expect(run.code, run.output).toBe(0);
  const [done] = await waitForWorkflows(
    pipeline.client,
    `WorkflowType="enrollment" AND DeviceId="${cn}" AND ExecutionStatus="Completed"`,
    1,
  );
  const csrBase64 = Buffer.from(fromPem(readFileSync(join(run.dir, 'csr.pem'), 'utf8'))).toString('base64');
  return { workflowId: done!.workflowId, csrBase64 };
}

/** `npm run api` as its own OS process, as production runs it. */
async function startApiProcess(env: Record<string, string>) {
  const api = await startProductProcess({
    script: 'api/main.ts',
    env,
    ready: /\[api\] SCEP on (\S+)\/scep; operators on ([^\s"]+)/,
  });
  return { ...api, url: api.ready[1]!, operatorUrl: api.ready[2]! };
}

/** What pkcs11-tool shows of every key in a token: label, class, usage and access flags. */
async function keysOf(
  tokenLabel: string,
): Promise<Array<{ kind: string; label: string; usage: string; access: string }>> {
  const { code, output } = await exec(
    'pkcs11-tool',
    [
      '--module',
      findSoftHsmLibrary(),
      '--token-label',
      tokenLabel,
      '--login',
      '--pin',
      '1234',
      '--list-objects',
    ],
    { env: { ...process.env, SOFTHSM2_CONF: softhsmConf() } },
  );
  expect(code, output).toBe(0);
  return output
    .split(/\n(?=\S)/)
    .filter((block) => / Key Object/.test(block))
    .map((block) => ({
      kind: /^(\w+) Key Object/.exec(block)![1]!,
      label: /label:\s+(.*)/.exec(block)?.[1]?.trim() ?? '',
      usage: /Usage:\s+(.*)/.exec(block)?.[1]?.trim() ?? '',
      access: /Access:\s+(.*)/.exec(block)?.[1]?.trim() ?? '',
    }));
}

/** An HTTPS request with an optional client certificate (fetch cannot present one). */
function httpsRequest(
  url: string,
  opts: {
    method?: string;
    body?: unknown;
    cert?: string;
    key?: string;
    headers?: Record<string, string>;
  } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: opts.method ?? 'GET',
        headers: { ...(opts.body ? { 'content-type': 'application/json' } : {}), ...opts.headers },
        ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
      },
      (res) => {
        let body = '';
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(opts.body ? JSON.stringify(opts.body) : undefined);
  });
}

describe('the internet-facing API holds no CA key', () => {
  let api: Awaited<ReturnType<typeof startApiProcess>>;
  let enrolled: Awaited<ReturnType<typeof scepclientEnroll>>;

  beforeAll(async () => {
    // The RA and data PINs only; the CA PIN it is given is wrong, so any use of the CA token fails.
    api = await startApiProcess({
      ...stack.env,
      DATABASE_URL: stack.databaseUrl,
      TEMPORAL_ADDRESS: pipeline.temporalAddress,
      TEMPORAL_NAMESPACE: pipeline.client.options.namespace,
      API_PORT: '0',
      OPERATOR_PORT: '0',
      PKCS11_LIBRARY: findSoftHsmLibrary(),
      SOFTHSM2_CONF: softhsmConf(),
      HSM_CA_PIN: 'not-the-ca-pin',
    });
    enrolled = await scepclientEnroll({
      url: `${api.url}/scep`,
      challenge: 'test-challenge',
      cn: 'custody-laptop',
    });
  }, 120_000);
  afterAll(() => {
    api?.process.kill('SIGTERM');
  });

  it('enrolls a device with scepclient through an API process that opened only the RA and data tokens', () => {
    expect(enrolled.code, `${enrolled.output}\n${api.output()}`).toBe(0);
    expect(enrolled.certificatePem).toContain('BEGIN CERTIFICATE');
    expect(api.output()).not.toMatch(/CKR_PIN_INCORRECT|error/i);
  });

  it('answers OCSP with a delegated responder certificate (EKU OCSP Signing, no-check), not the CA key', async () => {
    const certFile = join(enrolled.dir, 'cert.pem');
    const { code, output } = await openssl([
      'ocsp',
      '-issuer',
      issuingFile,
      '-cert',
      certFile,
      '-url',
      `${api.url}/ocsp`,
      '-CAfile',
      rootFile,
      '-resp_text',
    ]);
    expect(code, output).toBe(0);
    expect(output).toContain('Response verify OK');
    expect(output).toContain(`${certFile}: good`);
    // Signed with the responder's own key (responder id by key hash), certified by the CA for 7 days.
    expect(output).toMatch(/Subject: CN\s*=\s*OCSP Responder for Device PKI Test Issuing CA \(devices\)/);
    expect(output).toMatch(/X509v3 Extended Key Usage:\s*\n\s*OCSP Signing/);
    expect(output).toContain('OCSP No Check');
  });

  it('serves the CRL the HSM host signed, from the database', async () => {
    const response = await fetch(`${api.url}/crl/devices.crl`);
    expect(response.status).toBe(200);
    const crlFile = join(work, 'devices.crl');
    writeFileSync(crlFile, Buffer.from(await response.arrayBuffer()));
    const { code, output } = await openssl([
      'crl',
      '-inform',
      'DER',
      '-in',
      crlFile,
      '-CAfile',
      issuingFile,
      '-noout',
      '-text',
    ]);
    expect(code, output).toBe(0);
    expect(output).toContain('verify OK');
  });

  it('pkcs11-tool: the RA token holds no CA private key; the CA token holds them, sign-only', async () => {
    const caLabels = [
      pipeline.config.rootCa.keyLabel,
      ...pipeline.config.profiles.map((p) => `issuing-ca/${p.name}`),
    ];
    const ra = (await keysOf(stack.env.HSM_RA_TOKEN_LABEL!)).filter((k) => k.kind === 'Private');
    // The RA key and one OCSP responder key per issuing CA; no CA key under any label.
    expect(ra.map((k) => k.label)).toContain('scep-ra');
    for (const key of ra)
      expect(key.label === 'scep-ra' || key.label.startsWith('ocsp/issuing-ca/'), key.label).toBe(true);
    for (const label of caLabels) expect(ra.map((k) => k.label)).not.toContain(label);
    const ca = (await keysOf(stack.env.HSM_CA_TOKEN_LABEL!)).filter((k) => k.kind === 'Private');
    for (const label of caLabels) expect(ca.map((k) => k.label)).toContain(label);
  });
});

describe('every key can do its job and nothing else', () => {
  const NON_EXTRACTABLE = /^sensitive, always sensitive, never extractable, local$/;

  it('CA keys sign only; the RA key decrypts (SCEP envelopes) and signs; OCSP keys sign; data keys only encrypt/decrypt; service keys sign only', async () => {
    const ca = await keysOf(stack.env.HSM_CA_TOKEN_LABEL!);
    const ra = await keysOf(stack.env.HSM_RA_TOKEN_LABEL!);
    const data = await keysOf(stack.env.HSM_DATA_TOKEN_LABEL!);
    for (const key of ca.filter((k) => k.kind === 'Private')) {
      expect(key.usage, key.label).toBe('sign');
      expect(key.access, key.label).toMatch(NON_EXTRACTABLE);
    }
    for (const key of ca.filter((k) => k.kind === 'Public')) expect(key.usage, key.label).toBe('verify');
    for (const key of ra.filter((k) => k.kind === 'Private')) {
      expect(key.usage, key.label).toBe(key.label === 'scep-ra' ? 'decrypt, sign' : 'sign');
      expect(key.access, key.label).toMatch(NON_EXTRACTABLE);
    }
    // Service credential keys (Intune client certificates, made by other test files of the run) are
    // the data token's only key pairs: labelled service/<name>/<n>, sign-only.
    const pairs = data.filter((k) => k.kind !== 'Secret');
    for (const key of pairs) expect(key.label, key.label).toMatch(/^service\/[a-z0-9-]+\/\d+$/);
    for (const key of pairs.filter((k) => k.kind === 'Private')) {
      expect(key.usage, key.label).toBe('sign');
      expect(key.access, key.label).toMatch(NON_EXTRACTABLE);
    }
    const secrets = data.filter((k) => k.kind === 'Secret');
    expect(secrets.map((k) => k.label).sort()).toEqual(['field-encryption', 'payload-kek/1']);
    for (const key of secrets) {
      // No wrap/unwrap: a data key cannot export another key, nor import one.
      expect(key.usage, key.label).toBe('encrypt, decrypt');
      expect(key.access, key.label).toMatch(NON_EXTRACTABLE);
    }
  });
});

describe('what Temporal sees', () => {
  let enrollmentId: string;
  let csrBase64: string;

  beforeAll(async () => {
    ({ workflowId: enrollmentId, csrBase64 } = await enrollCompleted('sealed-laptop'));
  }, 120_000);

  /** Every payload of a `temporal workflow show -o json` history, but search attributes (meant to be read). */
  const payloadsOf = (history: unknown): Array<{ metadata: Record<string, string>; data?: string }> => {
    const found: Array<{ metadata: Record<string, string>; data?: string }> = [];
    // Search attributes are meant to be read; the SDK's own marker data (patch ids, a local
    // activity's attempt and timing) is plain; a local activity's result is ours and is sealed.
    const walk = (node: unknown, key: string, sdkData = false) => {
      if (!node || typeof node !== 'object' || key === 'searchAttributes') return;
      const record = node as Record<string, unknown>;
      if (record.markerName === 'core_patch') return;
      if (record.metadata && typeof record.metadata === 'object' && 'encoding' in (record.metadata as object))
        found.push(record as never);
      const marker = typeof record.markerName === 'string';
      for (const [k, v] of Object.entries(record)) {
        if (sdkData && k === 'data') continue;
        walk(v, k, marker && k === 'details');
      }
    };
    walk(history, '');
    return found;
  };
  const decoded = (text: string | undefined) => Buffer.from(text ?? '', 'base64').toString('utf8');
  /** What an operator (or anyone with frontend access) types to read the enrollment's history. */
  const showEnrollment = () => ['workflow', 'show', '--workflow-id', enrollmentId, '--output', 'json'];

  it('`temporal workflow show` finds only ciphertext: no CSR, no challenge, no certificate', async () => {
    const shown = await temporalCli(pipeline, showEnrollment());
    expect(shown.code, shown.output).toBe(0);
    const payloads = payloadsOf(JSON.parse(shown.output));
    expect(payloads.length).toBeGreaterThan(3);
    for (const payload of payloads) {
      expect(decoded(payload.metadata.encoding), JSON.stringify(payload)).toBe('binary/encrypted');
      const plain = decoded(payload.data);
      expect(plain).not.toContain(csrBase64.slice(0, 60));
      expect(plain).not.toContain('test-challenge');
      expect(plain).not.toContain('sealed-laptop');
    }
    expect(shown.output).not.toContain(csrBase64.slice(0, 60));
  });

  it('an operator reads it through the codec server with the CLI; without credentials the codec answers 401', async () => {
    const shown = await temporalCli(
      pipeline,
      [
        ...showEnrollment(),
        '--codec-endpoint',
        `${pipeline.operatorUrl}/codec`,
        '--codec-auth',
        `Bearer ${OPERATOR_TOKEN}`,
      ],
      // Go reads the trust store from SSL_CERT_FILE: the operator listener's chain.
      { SSL_CERT_FILE: stack.env.NODE_EXTRA_CA_CERTS },
    );
    expect(shown.code, shown.output).toBe(0);
    const plain = payloadsOf(JSON.parse(shown.output)).map((p) => decoded(p.data));
    expect(plain.some((text) => text.includes(csrBase64.slice(0, 60)))).toBe(true);

    const anonymous = await fetch(`${pipeline.operatorUrl}/codec/decode`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ payloads: [] }),
    });
    expect(anonymous.status).toBe(401);
  });
});

describe('the operator listener knows operators by certificate', () => {
  let operator: { cert: string; key: string };
  let stranger: { cert: string; key: string };
  let device: { cert: string; key: string };

  beforeAll(async () => {
    // An operator certificate: a one-time challenge bound to "alice", then SCEP on the operators' profile.
    const made = await fetch(`${pipeline.operatorUrl}/operator/profiles/operators/challenges`, {
      method: 'POST',
      headers: { ...bearer, 'content-type': 'application/json' },
      body: JSON.stringify({ deviceId: 'alice', issuedTo: 'alice (security team)' }),
    });
    expect(made.status).toBe(201);
    const { challenge } = (await made.json()) as { challenge: string };
    const alice = await scepclientEnroll({ url: `${pipeline.url}/scep/operators`, challenge, cn: 'alice' });
    expect(alice.code, alice.output).toBe(0);
    operator = { cert: alice.certificatePem!, key: readFileSync(join(alice.dir, 'key.pem'), 'utf8') };

    const laptop = await scepclientEnroll({
      url: `${pipeline.url}/scep`,
      challenge: 'test-challenge',
      cn: 'victim-of-alice',
    });
    expect(laptop.code, laptop.output).toBe(0);
    device = { cert: laptop.certificatePem!, key: readFileSync(join(laptop.dir, 'key.pem'), 'utf8') };

    const keyFile = join(work, 'stranger.key');
    const certFile = join(work, 'stranger.pem');
    const made2 = await openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=alice',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ]);
    expect(made2.code, made2.output).toBe(0);
    stranger = { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
    process.env.OPERATOR_AUTH = 'client-certificate';
  }, 120_000);
  afterAll(() => {
    process.env.OPERATOR_AUTH = 'token-or-certificate';
  });

  it('openssl s_client: TLS verifies against our root and names the operators CA as acceptable client CA', async () => {
    const { hostname, port } = new URL(pipeline.operatorUrl);
    const { output } = await exec(
      'openssl',
      ['s_client', '-connect', `${hostname}:${port}`, '-servername', 'localhost', '-CAfile', rootFile],
      { input: '' },
    );
    expect(output).toMatch(
      /Acceptable client certificate CA names\s*\n\s*CN\s*=\s*Device PKI Tests Operators CA/,
    );
    expect(output).toContain('Verify return code: 0 (ok)');
  });

  it('refuses no certificate, a self-made one and a device certificate; admits the operator, audited by name', async () => {
    const url = `${pipeline.operatorUrl}/operator/devices/devices/victim-of-alice`;
    expect((await httpsRequest(url)).status).toBe(401);
    expect((await httpsRequest(url, { headers: bearer })).status).toBe(401); // tokens are off now
    expect((await httpsRequest(url, stranger)).status).toBe(401);
    expect((await httpsRequest(url, device)).status).toBe(401);
    const admitted = await httpsRequest(url, operator);
    expect(admitted.status, admitted.body).toBe(200);

    // A self-asserted name in the body does not change who acted: the certificate says alice.
    const revoke = await httpsRequest(`${url}/revoke`, {
      ...operator,
      method: 'POST',
      body: { reason: 'keyCompromise', by: 'mallory' },
    });
    expect(revoke.status, revoke.body).toBe(202);
    const [cert] = await pipeline.db.db
      .select({ serialHex: certificates.serialHex })
      .from(certificates)
      .where(eq(certificates.deviceId, 'victim-of-alice'));
    const deadline = Date.now() + 15_000;
    let audit: Array<{ actor: string }> = [];
    while (audit.length === 0 && Date.now() < deadline) {
      audit = await pipeline.db.db
        .select({ actor: auditEvents.actor })
        .from(auditEvents)
        .where(and(eq(auditEvents.subject, cert!.serialHex), eq(auditEvents.action, 'certificate.revoked')));
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(audit).toEqual([{ actor: 'alice' }]);
  });
});

describe('the HSM host signs only what was admitted', () => {
  const workflowsPath = fileURLToPath(new URL('../support/attacker-workflow.ts', import.meta.url));
  let connection: NativeConnection;
  let worker: Worker;
  let running: Promise<void>;
  const taskQueue = `attacker-${randomUUID().slice(0, 8)}`;
  let admitted: { enrollmentId: string; csr: string };

  beforeAll(async () => {
    const target = await enrollCompleted('forgery-target');
    admitted = { enrollmentId: target.workflowId, csr: target.csrBase64 };
    // A compromised pki worker: it holds the data token (so it speaks the payload codec) and Temporal access.
    connection = await NativeConnection.connect({ address: pipeline.temporalAddress });
    worker = await Worker.create({
      connection,
      namespace: pipeline.client.options.namespace,
      taskQueue,
      workflowsPath,
      dataConverter: { payloadCodecs: [payloadCodecOf(pipeline.tokens.get('data'))] },
    });
    running = worker.run();
  }, 120_000);
  afterAll(async () => {
    worker?.shutdown();
    await running;
    await connection?.close();
  });

  const forge = (input: Record<string, unknown>) =>
    pipeline.client.workflow.execute('forgeIssuance', {
      taskQueue,
      workflowId: `attack/${randomUUID()}`,
      args: [input],
    }) as Promise<{ issued?: unknown; refused?: string; type?: string }>;
  const hour = 3600_000;
  const valid = () => ({
    profile: 'devices',
    enrollmentId: admitted.enrollmentId,
    csr: admitted.csr,
    notBefore: new Date(Date.now() - 60_000).toISOString(),
    notAfter: new Date(Date.now() + 20 * hour).toISOString(),
  });

  it.each([
    [
      'ten years of validity',
      () => ({ ...valid(), notAfter: new Date(Date.now() + 3650 * 24 * hour).toISOString() }),
      /exceeds the profile|beyond the profile/,
    ],
    ['an extra field (a CA flag)', () => ({ ...valid(), isCa: true }), /malformed issuance request/],
    [
      'another profile (operators) for the admitted enrollment',
      () => ({ ...valid(), profile: 'operators' }),
      /does not belong to profile operators/,
    ],
    [
      'an enrollment nobody admitted',
      () => ({ ...valid(), enrollmentId: 'enroll/devices/forged-1' }),
      /never admitted/,
    ],
  ])('refuses %s', async (_name, input, reason) => {
    const result = await forge(input());
    expect(result.issued).toBeUndefined();
    expect(result.refused).toMatch(reason);
    expect(result.type).toBe('IssuanceRefused');
  });
});
