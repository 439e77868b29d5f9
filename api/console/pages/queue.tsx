/** Enrollments waiting for a person: escalated ones (retry or reject) and those awaiting approval. */
import type { FC } from 'hono/jsx';
import { type WebUi, WorkflowLink } from './layout.js';

export interface QueueItem {
  workflowId: string;
  profile: string | null;
  deviceId: string | null;
  startTime: string;
  escalation?: { step: string; error: string; since: string; deadline: string } | null;
  approval?: { reason: string; since: string; deadline: string } | null;
  vouchedBy?: unknown;
  stateError?: string;
}

const Decision: FC<{ workflowId: string; action: 'retry' | 'approve' | 'reject'; label: string }> = ({
  workflowId,
  action,
  label,
}) => (
  <form method="post" action={`/console/enrollments/${action}`} class="inline">
    <input type="hidden" name="workflowId" value={workflowId} />
    {action === 'reject' && <input name="reason" placeholder="reason" required maxlength={255} />}
    <button type="submit">{label}</button>
  </form>
);

/** One work list: who, why it waits (its own columns), the workflow, and the decisions it can take. */
const QueueTable: FC<{
  title: string;
  empty: string;
  testId: string;
  items: QueueItem[];
  columns: Array<[heading: string, cell: (item: QueueItem) => string]>;
  decisions: Array<{ action: 'retry' | 'approve' | 'reject'; label: string }>;
  ui: WebUi | undefined;
}> = ({ title, empty, testId, items, columns, decisions, ui }) => (
  <>
    <h2>
      {title} ({items.length})
    </h2>
    {items.length === 0 ? (
      <p class="muted">{empty}</p>
    ) : (
      <table data-testid={testId}>
        <tr>
          <th>Device</th>
          <th>Profile</th>
          {columns.map(([heading]) => (
            <th>{heading}</th>
          ))}
          <th>Workflow</th>
          <th>Decide</th>
        </tr>
        {items.map((item) => (
          <tr data-workflow-id={item.workflowId}>
            <td>{item.deviceId}</td>
            <td>{item.profile}</td>
            {columns.map(([, cell]) => (
              <td>{cell(item)}</td>
            ))}
            <td>
              <WorkflowLink ui={ui} workflowId={item.workflowId} />
            </td>
            <td>
              {decisions.map((d, i) => (
                <>
                  {i > 0 && ' '}
                  <Decision workflowId={item.workflowId} action={d.action} label={d.label} />
                </>
              ))}
            </td>
          </tr>
        ))}
      </table>
    )}
  </>
);

export const QueuePage: FC<{ escalated: QueueItem[]; awaiting: QueueItem[]; ui: WebUi | undefined }> = ({
  escalated,
  awaiting,
  ui,
}) => (
  <>
    <QueueTable
      title="Escalated"
      empty="No enrollment is escalated."
      testId="escalated"
      items={escalated}
      columns={[
        ['Failing step', (e) => e.escalation?.step ?? e.stateError ?? ''],
        ['Last error', (e) => e.escalation?.error ?? ''],
        ['Since', (e) => e.escalation?.since ?? e.startTime],
        ['Deadline', (e) => e.escalation?.deadline ?? ''],
      ]}
      decisions={[
        { action: 'retry', label: 'Retry' },
        { action: 'reject', label: 'Reject' },
      ]}
      ui={ui}
    />
    <QueueTable
      title="Awaiting approval"
      empty="No enrollment awaits approval."
      testId="awaiting-approval"
      items={awaiting}
      columns={[
        ['Why', (e) => e.approval?.reason ?? e.stateError ?? ''],
        ['Since', (e) => e.approval?.since ?? e.startTime],
        ['Deadline', (e) => e.approval?.deadline ?? ''],
      ]}
      decisions={[
        { action: 'approve', label: 'Approve' },
        { action: 'reject', label: 'Reject' },
      ]}
      ui={ui}
    />
  </>
);
