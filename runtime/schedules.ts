/**
 * The Temporal Schedules of the product, created at the start of every `pki` worker (idempotent:
 * an existing schedule is left as it is, so several workers starting together are fine).
 *
 * - `crl-refresh`: hourly, workflow `refreshCrls` re-signs every local CA's CRL whose nextUpdate is
 *   within 6 hours (CRLs are valid 24 hours).
 * - `intune-revocations/<profile>`: per Intune profile, every INTUNE_REVOCATION_SYNC_MINUTES
 *   (default 15), workflow `intuneRevocationSync` answers Intune's revocation requests.
 * - `reports/daily`: at `reports.time` in `reports.timeZone`, workflow `dailyReport`. Unlike the
 *   others its time comes from the config file, so an existing one is updated to the configured time.
 *
 * Operators see them in the Web UI (Schedules) and with `temporal schedule list`; `temporal schedule
 * trigger --schedule-id crl-refresh` runs one now. A schedule whose profile was removed from the
 * config is not deleted here: `temporal schedule delete --schedule-id intune-revocations/<profile>`.
 */
import { type Client, ScheduleAlreadyRunning, type ScheduleOptions } from '@temporalio/client';
import type { PkiConfig } from '../config/profile-types.js';
import type { dailyReport } from '../workflows/daily-report.js';
import {
  DAILY_REPORT_SCHEDULE_ID,
  dailyReportNowWorkflowId,
  PkiProfileKey,
  TASK_QUEUE,
} from '../workflows/definitions.js';

export const CRL_REFRESH_SCHEDULE_ID = 'crl-refresh';
export const intuneRevocationScheduleId = (profile: string) => `intune-revocations/${profile}`;

export interface ScheduleSettings {
  intuneRevocationSyncMinutes: number;
}

export function scheduleSettings(env: NodeJS.ProcessEnv = process.env): ScheduleSettings {
  const minutes = Number(env.INTUNE_REVOCATION_SYNC_MINUTES || 15);
  if (!Number.isFinite(minutes) || minutes < 1 || minutes > 24 * 60)
    throw new Error('INTUNE_REVOCATION_SYNC_MINUTES must be a number of minutes from 1 to 1440');
  return { intuneRevocationSyncMinutes: minutes };
}

/** What ensureSchedules creates for this configuration (also used by tests and docs). */
export function productSchedules(config: PkiConfig, settings: ScheduleSettings): ScheduleOptions[] {
  const schedules: ScheduleOptions[] = [
    {
      scheduleId: CRL_REFRESH_SCHEDULE_ID,
      spec: { intervals: [{ every: '1 hour' }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'refreshCrls',
        workflowId: 'crl-refresh',
        taskQueue: TASK_QUEUE,
        args: [],
        workflowExecutionTimeout: '50 minutes',
      },
      policies: { overlap: 'SKIP', catchupWindow: '1 hour' },
    },
  ];
  schedules.push(dailyReportSchedule(config));
  for (const profile of config.profiles) {
    if (profile.mdm.type !== 'intune') continue;
    schedules.push({
      scheduleId: intuneRevocationScheduleId(profile.name),
      spec: { intervals: [{ every: `${settings.intuneRevocationSyncMinutes} minutes` }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'intuneRevocationSync',
        workflowId: intuneRevocationScheduleId(profile.name),
        taskQueue: TASK_QUEUE,
        args: [{ profile: profile.name }],
        typedSearchAttributes: [{ key: PkiProfileKey, value: profile.name }],
        workflowExecutionTimeout: '1 hour',
      },
      policies: { overlap: 'SKIP', catchupWindow: `${settings.intuneRevocationSyncMinutes} minutes` },
    });
  }
  return schedules;
}

function dailyReportSchedule(config: PkiConfig): ScheduleOptions {
  const [hour, minute] = config.reports.time.split(':').map(Number) as [number, number];
  return {
    scheduleId: DAILY_REPORT_SCHEDULE_ID,
    spec: { calendars: [{ hour, minute }], timezone: config.reports.timeZone },
    action: {
      type: 'startWorkflow',
      workflowType: 'dailyReport',
      workflowId: DAILY_REPORT_SCHEDULE_ID,
      taskQueue: TASK_QUEUE,
      args: [],
      workflowExecutionTimeout: '1 hour',
    },
    // A worker fleet that was down at report time still sends the day's report when it comes back.
    policies: { overlap: 'SKIP', catchupWindow: '6 hours' },
  };
}

/** Creates the missing schedules; returns the ids it created (the others already existed). */
export async function ensureSchedules(
  client: Client,
  config: PkiConfig,
  settings: ScheduleSettings = scheduleSettings(),
): Promise<string[]> {
  const created: string[] = [];
  for (const options of productSchedules(config, settings)) {
    try {
      await client.schedule.create(options);
      created.push(options.scheduleId);
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      if (options.scheduleId === DAILY_REPORT_SCHEDULE_ID)
        await client.schedule
          .getHandle(options.scheduleId)
          .update((current) => ({ ...current, spec: options.spec }));
    }
  }
  return created;
}

/**
 * Runs the CRL refresh now (as its schedule would), e.g. when the API registered a new OCSP
 * responder key that the CA worker must certify. One at a time: a run in progress is joined.
 */
export async function requestRevocationRefresh(client: Client): Promise<void> {
  await client.workflow.start('refreshCrls', {
    workflowId: `${CRL_REFRESH_SCHEDULE_ID}/on-demand`,
    taskQueue: TASK_QUEUE,
    args: [],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowExecutionTimeout: '50 minutes',
  });
}

/** Runs the daily report now (CLI, operator API) and waits for it: the report of today's date. */
export async function runDailyReportNow(
  client: Client,
  workflowId: string = dailyReportNowWorkflowId(new Date()),
): Promise<{ reportDate: string; emailed: boolean; workflowId: string }> {
  const { reportDate, emailed } = await client.workflow.execute<typeof dailyReport>('dailyReport', {
    workflowId,
    taskQueue: TASK_QUEUE,
    args: [],
    workflowExecutionTimeout: '1 hour',
  });
  return { reportDate, emailed, workflowId };
}
