/**
 * The operator's saved views as links that stay valid: /console/views/<name> opens the Temporal Web
 * UI with the visibility query filled in. "Refused today" cannot be a static link (visibility
 * queries know only absolute times), so the console writes today's date (UTC) into it per click.
 */
export const SAVED_VIEWS = {
  escalated: () => 'WorkflowType="enrollment" AND PkiStatus="Escalated" AND ExecutionStatus="Running"',
  'awaiting-approval': () =>
    'WorkflowType="enrollment" AND PkiStatus="AwaitingApproval" AND ExecutionStatus="Running"',
  'refused-today': (now: Date) =>
    `WorkflowType="enrollment" AND PkiStatus="Failed" AND CloseTime >= "${now.toISOString().slice(0, 10)}T00:00:00Z"`,
  'renewal-overdue': () =>
    'WorkflowType="deviceLifecycle" AND PkiStatus="RenewalOverdue" AND ExecutionStatus="Running"',
} as const;

export type SavedView = keyof typeof SAVED_VIEWS;

export function isSavedView(name: string): name is SavedView {
  return Object.hasOwn(SAVED_VIEWS, name);
}

/** The Web UI's workflow list for a view. */
export function savedViewUrl(
  ui: { url: string; namespace: string },
  view: SavedView,
  now = new Date(),
): string {
  const query = SAVED_VIEWS[view](now);
  return `${ui.url}/namespaces/${encodeURIComponent(ui.namespace)}/workflows?query=${encodeURIComponent(query)}`;
}
