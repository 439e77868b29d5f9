import { allHandlersFinished, condition, proxyLocalActivities, setHandler } from '@temporalio/workflow';
import type { FloorActivities } from './activities.js';
import { floorOutcomeUpdate } from './definitions.js';

const steps = proxyLocalActivities<FloorActivities>({ startToCloseTimeout: '10 seconds' });

/**
 * The floor any Temporal design of an enrollment pays (issue 10): started by update-with-start, its
 * update handler runs three local activities and returns; the workflow then completes.
 */
export async function floorEnrollment(request: string): Promise<string> {
  let outcome: string | undefined;
  setHandler(floorOutcomeUpdate, async (payload) => {
    outcome = await steps.record(await steps.issue(await steps.verify(payload)));
    return outcome;
  });
  await condition(() => outcome !== undefined && allHandlersFinished());
  return outcome ?? request;
}
