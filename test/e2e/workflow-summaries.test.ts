import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowNotFoundError } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../config/load.js';
import { certificates } from '../../db/schema.js';
import { toPem } from '../../pki/pem.js';
import {
  DeviceIdKey,
  deviceWorkflowId,
  type EnrollmentResult,
  enrollmentWorkflowId,
  legacyEnrollmentWorkflowId,
  PkiOutcomeKey,
  PkiProfileKey,
  PkiStatusKey,
  TASK_QUEUE,
} from '../../workflows/definitions.js';
import { postPkiOperation } from '../support/certrep-attributes.js';
import { enrollmentInputOf } from '../support/enrollment-input.js';
import { buildPkcsReq, makeDevice, type OpensslDevice } from '../support/openssl-scep.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { waitForWorkflows } from '../support/temporal.js';

/**
 * The Temporal Web UI as a work list: each workflow says which device it is for and how it ended,
 * its id stays one readable URL-safe segment per part, and the README's saved views are queries
 * Temporal accepts. Ids keep the transaction semantics: a resend attaches, also to a transaction
 * started by the previous release under its raw id.
 */
let pipeline: Pipeline;
let work: string;
let raFile: string;
const run = randomBytes(3).toString('hex');
const PROFILE = 'devices';

beforeAll(async () => {
  process.env.OPERATOR_TOKEN ??= 'summaries-operator-token';
  work = mkdtempSync(join(tmpdir(), 'e2e-summaries-'));
  pipeline = await startPipeline({ enrollmentWaitMs: 15_000 });
  raFile = join(work, 'ra.pem');
  writeFileSync(raFile, toPem(pipeline.ras.get(PROFILE)!.raCertificate));
});
afterAll(async () => {
  await pipeline?.stop();
});

/** A base64 transactionID as micromdm's scepclient sends it, starting with '/' like the issue's. */
const base64TransactionId = () => `/${randomBytes(15).toString('base64')}+${run}=`;

const pkcsReq = (device: OpensslDevice, transactionId: string) =>
  buildPkcsReq(device, { dir: work, raFile, transactionId, cipher: 'aes256' });

const send = async (der: Uint8Array) => {
  const reply = await postPkiOperation(`${pipeline.url}/scep/${PROFILE}`, der, work);
  expect(reply.status, reply.text).toBe(200);
  return reply.attributes!;
};

const enrollmentsOf = (deviceId: string) =>
  waitForWorkflows(pipeline.client, `WorkflowType="enrollment" AND DeviceId="${deviceId}"`, 1);

describe('enrollment workflows in the Web UI list', () => {
  it('a successful enrollment has a readable URL-safe id, a summary naming device and profile, and PkiOutcome Issued', async () => {
    const cn = `summary-ok-${run}`;
    const device = await makeDevice(work, cn, 'test-challenge');
    const transactionId = base64TransactionId();
    const request = await pkcsReq(device, transactionId);
    const answer = await send(request);
    expect(answer.pkiStatus).toBe('0');

    const [listed] = await enrollmentsOf(cn);
    const workflowId = listed!.workflowId;
    expect(workflowId).toBe(enrollmentWorkflowId(PROFILE, transactionId));
    // No empty segment (the raw id was enroll/devices//...), nothing a URL would reinterpret.
    const segments = workflowId.split('/');
    expect(segments).toHaveLength(3);
    for (const segment of segments) expect(segment).toMatch(/^[A-Za-z0-9._~-]+$/);
    // Still readable: the transactionID is there, its '/', '+' and '=' escaped as _2F, _2B, _3D.
    expect(segments[2]).toBe(
      transactionId.replace(/[/+=]/g, (c) => `_${c.charCodeAt(0).toString(16).toUpperCase()}`),
    );

    const description = await pipeline.client.workflow.getHandle(workflowId).describe();
    expect(await description.staticSummary()).toBe(`${cn} (claimed) · profile ${PROFILE} · PKCSReq`);
    const details = await description.staticDetails();
    expect(details).toContain(`\`${transactionId}\``);
    expect(details).toContain('RSA 2048');
    const result = (await pipeline.client.workflow.getHandle(workflowId).result()) as EnrollmentResult;
    expect(result.outcome.status).toBe('SUCCESS');
    if (result.outcome.status !== 'SUCCESS') return;
    const [closed] = await waitForWorkflows(
      pipeline.client,
      `WorkflowId="${workflowId}" AND PkiStatus="Issued" AND PkiOutcome STARTS_WITH "Issued"`,
      1,
    );
    expect(closed!.typedSearchAttributes.get(PkiOutcomeKey)).toBe(
      `Issued: serial ${result.outcome.issued.serialHex}, valid until ${result.outcome.issued.notAfter.slice(0, 10)}`,
    );

    // Its certificate life, started by the hand-off, says whose it is too.
    const lifecycle = await pipeline.client.workflow.getHandle(deviceWorkflowId(PROFILE, cn)).describe();
    expect(await lifecycle.staticSummary()).toBe(`${cn} · profile ${PROFILE} · certificate life`);

    // The device resends the same transaction: the same workflow answers, nothing is enrolled again.
    const again = await send(request);
    expect(again.pkiStatus).toBe('0');
    const all = await enrollmentsOf(cn);
    expect(all.map((e) => e.workflowId)).toEqual([workflowId]);
  });

  it('a refused enrollment says "Refused: <reason>" in the list, not only a green Completed', async () => {
    const cn = `summary-refused-${run}`;
    const device = await makeDevice(work, cn, 'not-the-challenge');
    const transactionId = base64TransactionId();
    const answer = await send(await pkcsReq(device, transactionId));
    expect(answer.pkiStatus).toBe('2');

    const workflowId = enrollmentWorkflowId(PROFILE, transactionId);
    const handle = pipeline.client.workflow.getHandle(workflowId);
    const result = (await handle.result()) as EnrollmentResult;
    expect(result.outcome.status).toBe('FAILURE');
    if (result.outcome.status !== 'FAILURE') return;
    expect(result.outcome.reason.length).toBeGreaterThan(0);
    const [listed] = await waitForWorkflows(
      pipeline.client,
      `WorkflowId="${workflowId}" AND PkiOutcome STARTS_WITH "Refused"`,
      1,
    );
    expect(listed!.status.name).toBe('COMPLETED');
    expect(listed!.typedSearchAttributes.get(PkiStatusKey)).toBe('Failed');
    expect(listed!.typedSearchAttributes.get(PkiOutcomeKey)).toBe(`Refused: ${result.outcome.reason}`);
    expect(await (await handle.describe()).staticSummary()).toBe(
      `${cn} (claimed) · profile ${PROFILE} · PKCSReq`,
    );

    // The README's "refused" view lists it; every saved view is a query Temporal accepts.
    const views = readmeSavedViews();
    expect(views.map((v) => v.name)).toEqual([
      'Escalated',
      'Awaiting approval',
      'Refused, newest first',
      'Renewal overdue',
      'CA rotations under way',
    ]);
    for (const view of views) {
      const found: string[] = [];
      for await (const e of pipeline.client.workflow.list({ query: view.query })) found.push(e.workflowId);
      if (view.name.startsWith('Refused')) expect(found).toContain(workflowId);
      else expect(found).not.toContain(workflowId);
    }
  });

  it('a transaction started by the previous release under its raw id is found again when resent', async () => {
    const cn = `summary-legacy-${run}`;
    const device = await makeDevice(work, cn, 'test-challenge');
    const transactionId = base64TransactionId();
    const request = await pkcsReq(device, transactionId);
    // What the previous release's API did with this request: the same input, started under the raw id.
    const legacyId = legacyEnrollmentWorkflowId(PROFILE, transactionId);
    expect(legacyId).toContain('//');
    const input = await enrollmentInputOf(pipeline, PROFILE, request);
    const started = await pipeline.client.workflow.start('enrollment', {
      workflowId: legacyId,
      taskQueue: TASK_QUEUE,
      args: [input],
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      typedSearchAttributes: [
        { key: PkiProfileKey, value: PROFILE },
        { key: DeviceIdKey, value: input.claimedDeviceId },
        { key: PkiStatusKey, value: 'Pending' },
      ],
    });
    const legacyResult = (await started.result()) as EnrollmentResult;
    expect(legacyResult.outcome.status).toBe('SUCCESS');
    if (legacyResult.outcome.status !== 'SUCCESS') return;

    // The upgraded API gets the resend: it answers from the legacy workflow, with its certificate.
    const answer = await send(request);
    expect(answer.pkiStatus).toBe('0');
    const newId = enrollmentWorkflowId(PROFILE, transactionId);
    expect(newId).not.toBe(legacyId);
    await expect(pipeline.client.workflow.getHandle(newId).describe()).rejects.toBeInstanceOf(
      WorkflowNotFoundError,
    );
    const all = await enrollmentsOf(cn);
    expect(all.map((e) => e.workflowId)).toEqual([legacyId]);
    const issued = await pipeline.db.db.select().from(certificates).where(eq(certificates.deviceId, cn));
    expect(issued.map((c) => c.serialHex)).toEqual([legacyResult.outcome.issued.serialHex]);
  });
});

/** The README's saved views: `[name](http://.../workflows?query=...)`, the query URL-decoded. */
function readmeSavedViews(): Array<{ name: string; query: string }> {
  const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('**Saved views**'));
  const links = [...section.matchAll(/^- \[([^\]]+)\]\((http:\/\/[^)]+\/workflows\?query=[^)]+)\)/gm)];
  return links.map(([, name, url]) => ({
    name: name!,
    query: new URL(url!).searchParams.get('query')!,
  }));
}
