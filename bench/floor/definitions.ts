/** The floor workflow's contract, shared by its worker and the load generator. */
import { defineUpdate } from '@temporalio/workflow';

export const FLOOR_TASK_QUEUE = 'bench-floor';
export const FLOOR_WORKFLOW_TYPE = 'floorEnrollment';

/** The update the caller waits on, like the enrollment's awaitOutcome. */
export const floorOutcomeUpdate = defineUpdate<string, [string]>('awaitOutcome');
