/** One reading of Temporal's "no such workflow", whichever client call reported it. */
import { WorkflowNotFoundError } from '@temporalio/client';

export function isWorkflowNotFound(err: unknown): boolean {
  return (
    err instanceof WorkflowNotFoundError ||
    (err as Error | undefined)?.name === 'WorkflowNotFoundError' ||
    // An update or signal sent to a closed run comes back as a plain RPC error with this text.
    /workflow execution already completed/i.test(String((err as Error | undefined)?.message ?? ''))
  );
}
