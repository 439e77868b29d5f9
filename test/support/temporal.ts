import type { Client, WorkflowExecutionInfo } from '@temporalio/client';

/** Visibility is eventually consistent: list until the query matches `count` executions (or time out). */
export async function waitForWorkflows(
  client: Client,
  query: string,
  count: number,
  timeoutMs = 20_000,
): Promise<WorkflowExecutionInfo[]> {
  const deadline = Date.now() + timeoutMs;
  let found: WorkflowExecutionInfo[] = [];
  while (Date.now() < deadline) {
    found = [];
    for await (const execution of client.workflow.list({ query })) found.push(execution);
    if (found.length >= count) return found;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`expected ${count} workflow(s) for ${query}, found ${found.length}`);
}
