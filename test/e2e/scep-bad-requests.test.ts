import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollments } from '../../db/schema.js';
import { toPem } from '../../pki/pem.js';
import { enrollmentWorkflowId } from '../../workflows/definitions.js';
import { postPkiOperation } from '../support/certrep-attributes.js';
import { buildPkiMessage, makeDevice, type OpensslDevice } from '../support/openssl-scep.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';

/**
 * Requests that are signed and readable but wrong get a signed CertRep FAILURE with the failInfo
 * RFC 8894 asks for, each read back with OpenSSL. Messages come from the openssl-based builder.
 */
let pipeline: Pipeline;
let work: string;
let raFile: string;
const scep = () => `${pipeline.url}/scep/devices`;
let counter = 0;
const tid = (what: string) => `bad-${what}-${Date.now()}-${counter++}`;

beforeAll(async () => {
  process.env.SCEP_RATE_PER_MINUTE = '0';
  pipeline = await startPipeline();
  work = mkdtempSync(join(tmpdir(), 'e2e-bad-'));
  raFile = join(work, 'ra.pem');
  writeFileSync(raFile, toPem(pipeline.ras.get('devices')!.raCertificate));
});
afterAll(async () => {
  await pipeline?.stop();
});

const pkcsReq = (
  device: OpensslDevice,
  opts: { transactionId: string; content?: Uint8Array; messageType?: number | string; recipients?: string[] },
) =>
  buildPkiMessage({
    dir: work,
    recipients: opts.recipients ?? [raFile],
    signer: { keyFile: device.keyFile, certDer: device.certDer },
    cipher: 'aes256',
    digest: 'sha256',
    messageType: opts.messageType ?? 19,
    transactionId: opts.transactionId,
    content: opts.content ?? device.csrDer,
  });

describe('signed but wrong requests', () => {
  it('unknown message type: FAILURE badRequest', async () => {
    const device = await makeDevice(work, 'bad-type', 'test-challenge');
    const message = await pkcsReq(device, { transactionId: tid('type'), messageType: 99 });
    const reply = await postPkiOperation(scep(), message.der, work);
    expect(reply.status).toBe(200);
    expect(reply.attributes).toMatchObject({ pkiStatus: '2', failInfo: '2' });
  });

  it('a CSR whose self-signature does not verify: FAILURE badMessageCheck, nothing started', async () => {
    const device = await makeDevice(work, 'bad-csr', 'test-challenge');
    const csr = Buffer.from(device.csrDer);
    csr[csr.length - 5]! ^= 0xff; // inside the CSR's signature bits
    const transactionId = tid('csr');
    const reply = await postPkiOperation(
      scep(),
      (await pkcsReq(device, { transactionId, content: csr })).der,
      work,
    );
    expect(reply.attributes).toMatchObject({ pkiStatus: '2', failInfo: '1', transactionId });
    const started = await pipeline.client.workflow.count(
      `WorkflowId="${enrollmentWorkflowId('devices', transactionId)}"`,
    );
    expect(started.count).toBe(0);
  });

  it('a CSR without a challenge password: FAILURE badRequest, the refusal recorded', async () => {
    const device = await makeDevice(work, 'bad-nochallenge');
    const transactionId = tid('nochallenge');
    const reply = await postPkiOperation(scep(), (await pkcsReq(device, { transactionId })).der, work);
    expect(reply.attributes).toMatchObject({ pkiStatus: '2', failInfo: '2', transactionId });
    const [row] = await pipeline.db.db
      .select()
      .from(enrollments)
      .where(eq(enrollments.transactionId, transactionId));
    expect(row?.failureReason).toContain('no challenge password');
  });

  it('a message whose signature was altered: FAILURE badMessageCheck', async () => {
    const device = await makeDevice(work, 'bad-signature', 'test-challenge');
    const message = Buffer.from((await pkcsReq(device, { transactionId: tid('sig') })).der);
    message[message.length - 3]! ^= 0x01; // the SignerInfo's signature is the last field
    const reply = await postPkiOperation(scep(), message, work);
    expect(reply.attributes).toMatchObject({ pkiStatus: '2', failInfo: '1' });
  });

  it('an envelope for another recipient: FAILURE badMessageCheck', async () => {
    const device = await makeDevice(work, 'bad-recipient', 'test-challenge');
    const stranger = await makeDevice(work, 'some-other-ra');
    const message = await pkcsReq(device, {
      transactionId: tid('recipient'),
      recipients: [stranger.certFile],
    });
    const reply = await postPkiOperation(scep(), message.der, work);
    expect(reply.attributes).toMatchObject({ pkiStatus: '2', failInfo: '1' });
  });
});
