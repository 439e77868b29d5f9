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

export const QueuePage: FC<{ escalated: QueueItem[]; awaiting: QueueItem[]; ui: WebUi | undefined }> = ({
  escalated,
  awaiting,
  ui,
}) => (
  <>
    <h2>Escalated ({escalated.length})</h2>
    {escalated.length === 0 ? (
      <p class="muted">No enrollment is escalated.</p>
    ) : (
      <table data-testid="escalated">
        <tr>
          <th>Device</th>
          <th>Profile</th>
          <th>Failing step</th>
          <th>Last error</th>
          <th>Since</th>
          <th>Deadline</th>
          <th>Workflow</th>
          <th>Decide</th>
        </tr>
        {escalated.map((e) => (
          <tr data-workflow-id={e.workflowId}>
            <td>{e.deviceId}</td>
            <td>{e.profile}</td>
            <td>{e.escalation?.step ?? e.stateError ?? ''}</td>
            <td>{e.escalation?.error ?? ''}</td>
            <td>{e.escalation?.since ?? e.startTime}</td>
            <td>{e.escalation?.deadline ?? ''}</td>
            <td>
              <WorkflowLink ui={ui} workflowId={e.workflowId} />
            </td>
            <td>
              <Decision workflowId={e.workflowId} action="retry" label="Retry" />{' '}
              <Decision workflowId={e.workflowId} action="reject" label="Reject" />
            </td>
          </tr>
        ))}
      </table>
    )}
    <h2>Awaiting approval ({awaiting.length})</h2>
    {awaiting.length === 0 ? (
      <p class="muted">No enrollment awaits approval.</p>
    ) : (
      <table data-testid="awaiting-approval">
        <tr>
          <th>Device</th>
          <th>Profile</th>
          <th>Why</th>
          <th>Since</th>
          <th>Deadline</th>
          <th>Workflow</th>
          <th>Decide</th>
        </tr>
        {awaiting.map((e) => (
          <tr data-workflow-id={e.workflowId}>
            <td>{e.deviceId}</td>
            <td>{e.profile}</td>
            <td>{e.approval?.reason ?? e.stateError ?? ''}</td>
            <td>{e.approval?.since ?? e.startTime}</td>
            <td>{e.approval?.deadline ?? ''}</td>
            <td>
              <WorkflowLink ui={ui} workflowId={e.workflowId} />
            </td>
            <td>
              <Decision workflowId={e.workflowId} action="approve" label="Approve" />{' '}
              <Decision workflowId={e.workflowId} action="reject" label="Reject" />
            </td>
          </tr>
        ))}
      </table>
    )}
  </>
);
