import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devices } from '../../db/schema.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { scepclientEnroll } from '../support/scep-clients.js';
import { waitForWorkflows } from '../support/temporal.js';
import { temporalCli } from '../support/temporal-cli.js';

let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline({
    configure: (config) => {
      // A one-minute certificate: RenewalDue at 30 s, RenewalOverdue at 40 s, Expired at 60 s.
      const profile = config.profiles[0]!;
      profile.template.validitySeconds = 60;
      profile.template.backdateSeconds = 0;
      profile.renewalFraction = 0.5;
      profile.lifecycle.overdueMarginSeconds = 20;
    },
  });
});
afterAll(async () => {
  await pipeline?.stop();
});

const deviceStatus = async (deviceId: string) => {
  const [row] = await pipeline.db.db
    .select({ status: devices.status })
    .from(devices)
    .where(and(eq(devices.profile, 'devices'), eq(devices.deviceId, deviceId)));
  return row?.status;
};

describe('a device lifecycle left alone', () => {
  it('becomes RenewalDue, then RenewalOverdue, then Expired, on its own timers', async () => {
    const run = await scepclientEnroll({
      url: `${pipeline.url}/scep`,
      challenge: 'test-challenge',
      cn: 'timer-laptop',
    });
    expect(run.code, run.output).toBe(0);
    const query = (status: string) =>
      `WorkflowId="device/devices/timer-laptop" AND PkiStatus="${status}" AND ExecutionStatus="Running"`;

    // The search attribute and the devices row are written one after the other: both must follow.
    await waitForWorkflows(pipeline.client, query('Active'), 1);
    await expect.poll(() => deviceStatus('timer-laptop'), { timeout: 10_000 }).toBe('active');

    await waitForWorkflows(pipeline.client, query('RenewalDue'), 1, 45_000);
    await expect.poll(() => deviceStatus('timer-laptop'), { timeout: 10_000 }).toBe('renewal_due');

    await waitForWorkflows(pipeline.client, query('RenewalOverdue'), 1, 25_000);
    // What the operator sees with the CLI.
    const listed = await temporalCli(pipeline, ['workflow', 'list', '--query', 'PkiStatus="RenewalOverdue"']);
    expect(listed.output).toContain('device/devices/timer-laptop');
    await expect.poll(() => deviceStatus('timer-laptop'), { timeout: 10_000 }).toBe('renewal_overdue');

    await waitForWorkflows(pipeline.client, query('Expired'), 1, 35_000);
    await expect.poll(() => deviceStatus('timer-laptop'), { timeout: 10_000 }).toBe('expired');
  }, 150_000);
});
