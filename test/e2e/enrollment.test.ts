import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, certificates, devices, enrollments } from '../../db/schema.js';
import { enrollmentWorkflowId } from '../../workflows/definitions.js';
import { certsFromPkcs7, openssl, serialOf } from '../support/openssl.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { scepclientEnroll } from '../support/scep-clients.js';
import { waitForWorkflows } from '../support/temporal.js';

let pipeline: Pipeline;
let work: string;
const challenge = 'test-challenge';

beforeAll(async () => {
  pipeline = await startPipeline();
  work = mkdtempSync(join(tmpdir(), 'e2e-enroll-'));
});
afterAll(async () => {
  await pipeline?.stop();
});

describe('a device enrolls with micromdm scepclient', () => {
  it('gets a certificate that OpenSSL verifies against the GetCACert chain, recorded in Postgres and Temporal', async () => {
    const run = await scepclientEnroll({ url: `${pipeline.url}/scep`, challenge, cn: 'laptop-001' });
    expect(run.code, run.output).toBe(0);
    expect(run.certificatePem).toContain('BEGIN CERTIFICATE');

    // The chain exactly as a device gets it.
    const caResponse = await fetch(`${pipeline.url}/scep?operation=GetCACert`);
    expect(caResponse.headers.get('content-type')).toBe('application/x-x509-ca-ra-cert');
    const chain = await certsFromPkcs7(new Uint8Array(await caResponse.arrayBuffer()), work);
    expect(chain).toHaveLength(3);
    writeFileSync(join(work, 'chain.pem'), chain.join('\n'));
    writeFileSync(join(work, 'laptop-001.pem'), run.certificatePem!);
    const verify = await openssl([
      'verify',
      '-CAfile',
      join(work, 'chain.pem'),
      join(work, 'laptop-001.pem'),
    ]);
    expect(verify.output).toContain('laptop-001.pem: OK');
    const text = await openssl([
      'x509',
      '-in',
      join(work, 'laptop-001.pem'),
      '-noout',
      '-subject',
      '-ext',
      'extendedKeyUsage',
    ]);
    // The subject is the profile's template applied to the device: scepclient's own O, OU and C are dropped.
    expect(text.output).toMatch(/subject=CN = laptop-001, O = Device PKI Tests\n/);
    expect(text.output).toContain('TLS Web Client Authentication');

    const serial = await serialOf(run.certificatePem!, work);
    const [row] = await pipeline.db.db
      .select()
      .from(certificates)
      .where(eq(certificates.deviceId, 'laptop-001'));
    expect(row?.serialHex.toLowerCase()).toBe(serial);
    expect(row?.status).toBe('valid');
    const [enrollment] = await pipeline.db.db
      .select()
      .from(enrollments)
      .where(eq(enrollments.deviceId, 'laptop-001'));
    expect(enrollment?.status).toBe('issued');
    // The CSR is at rest only sealed: its challenge password must not appear in the row.
    expect(Buffer.from(enrollment!.csrSealed).includes(Buffer.from(challenge))).toBe(false);
    const trail = await pipeline.db.db
      .select({ action: auditEvents.action, details: auditEvents.details })
      .from(auditEvents)
      .where(eq(auditEvents.subject, enrollment!.id))
      .orderBy(auditEvents.occurredAt, auditEvents.id);
    expect(trail.map((e) => e.action)).toEqual([
      'enrollment.received',
      'mdm.approved',
      'policy.csr_fields_dropped',
      'certificate.issued',
      'enrollment.succeeded',
    ]);
    expect(trail[1]!.details).toMatchObject({ deviceId: 'laptop-001', vouchedBy: null });
    expect(trail[2]!.details).toEqual({
      dropped: ['subject C=US', 'subject O=scep-client', 'subject OU=MDM'],
    });

    const [workflow] = await waitForWorkflows(
      pipeline.client,
      `WorkflowType="enrollment" AND DeviceId="laptop-001" AND PkiStatus="Issued" AND PkiProfile="devices"`,
      1,
    );
    expect(workflow?.workflowId).toBe(enrollmentWorkflowId('devices', enrollment!.transactionId));
    expect(workflow?.status.name).toBe('COMPLETED');

    const [lifecycle] = await waitForWorkflows(
      pipeline.client,
      `WorkflowType="deviceLifecycle" AND DeviceId="laptop-001" AND PkiStatus="Active" AND ExecutionStatus="Running"`,
      1,
    );
    expect(lifecycle?.workflowId).toBe('device/devices/laptop-001');
    const [device] = await pipeline.db.db
      .select()
      .from(devices)
      .where(and(eq(devices.profile, 'devices'), eq(devices.deviceId, 'laptop-001')));
    expect(device?.status).toBe('active');
    expect(device?.currentCertificateSerial?.toLowerCase()).toBe(serial);
  });

  it('refuses a wrong challenge with FAILURE badRequest, issues nothing and audits the refusal', async () => {
    const run = await scepclientEnroll({
      url: `${pipeline.url}/scep`,
      challenge: 'not-the-challenge',
      cn: 'laptop-bad',
    });
    expect(run.code).not.toBe(0);
    expect(run.output).toMatch(/badRequest|FAILURE|failInfo/i);
    expect(run.certificatePem).toBeUndefined();

    const issued = await pipeline.db.db
      .select()
      .from(certificates)
      .where(eq(certificates.deviceId, 'laptop-bad'));
    expect(issued).toHaveLength(0);
    const [enrollment] = await pipeline.db.db
      .select()
      .from(enrollments)
      .where(eq(enrollments.deviceId, 'laptop-bad'));
    expect(enrollment).toMatchObject({ status: 'failed', failInfo: 'badRequest' });
    expect(enrollment?.failureReason).toContain('challenge');
    const trail = await pipeline.db.db
      .select({ action: auditEvents.action })
      .from(auditEvents)
      .where(eq(auditEvents.subject, enrollment!.id));
    expect(trail.map((e) => e.action)).toContain('enrollment.failed');
    await waitForWorkflows(
      pipeline.client,
      `WorkflowType="enrollment" AND DeviceId="laptop-bad" AND PkiStatus="Failed"`,
      1,
    );
  });
});
