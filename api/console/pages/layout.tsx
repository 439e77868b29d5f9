/** The console's frame: navigation, who is logged in, a one-line notice after an action. */
import type { Child, FC } from 'hono/jsx';

export type Section = 'overview' | 'queue' | 'devices' | 'keys';

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{display:flex;gap:1.5rem;align-items:center;padding:.7rem 1.5rem;background:#1d2330;color:#fff}
header a{color:#cfd6e4;text-decoration:none}header a.active{color:#fff;font-weight:600}
header .who{margin-left:auto;display:flex;gap:.8rem;align-items:center}
main{padding:1.2rem 1.5rem;max-width:1200px}
h1{font-size:1.3rem;margin:.2rem 0 1rem}h2{font-size:1.05rem;margin:1.4rem 0 .5rem}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:1rem}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #e3e6eb;vertical-align:top}
th{background:#eef0f4;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.notice{padding:.6rem .8rem;background:#e7f4ea;border:1px solid #a9d5b3;margin-bottom:1rem}
.notice.error{background:#fbeaea;border-color:#e0a6a6}
.cards{display:flex;gap:1rem;flex-wrap:wrap;margin-bottom:1rem}
.card{background:#fff;border:1px solid #e3e6eb;padding:.8rem 1rem;min-width:150px}
a.card{color:inherit;text-decoration:none}
.card .n{font-size:1.6rem;font-weight:600}.card .l{color:#5b6475}
form.inline{display:inline-flex;gap:.3rem;margin:0}
button{cursor:pointer;padding:.25rem .7rem}input,select{padding:.25rem .4rem}
td code{white-space:pre-wrap;word-break:break-all}
.muted{color:#5b6475}.state-valid{color:#1b7d3a}.state-revoked,.state-expired{color:#b02a2a}
`;

export const Layout: FC<{
  title: string;
  section?: Section;
  operatorName?: string;
  notice?: { kind: 'ok' | 'error'; text: string } | undefined;
  children?: Child;
}> = ({ title, section, operatorName, notice, children }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <title>{`${title} · device-pki console`}</title>
      <style>{STYLE}</style>
    </head>
    <body>
      <header>
        <strong>device-pki</strong>
        {operatorName !== undefined && (
          <>
            <a href="/console" class={section === 'overview' ? 'active' : ''}>
              Overview
            </a>
            <a href="/console/queue" class={section === 'queue' ? 'active' : ''}>
              Escalations &amp; approvals
            </a>
            <a href="/console/devices" class={section === 'devices' ? 'active' : ''}>
              Devices
            </a>
            <a href="/console/keys" class={section === 'keys' ? 'active' : ''}>
              Keys
            </a>
            <span class="who">
              <span data-testid="operator">{operatorName}</span>
              <form method="post" action="/console/logout" class="inline">
                <button type="submit">Log out</button>
              </form>
            </span>
          </>
        )}
      </header>
      <main>
        <h1>{title}</h1>
        {notice && (
          <div class={notice.kind === 'error' ? 'notice error' : 'notice'} role="status">
            {notice.text}
          </div>
        )}
        {children}
      </main>
    </body>
  </html>
);

/** A link to a workflow in the Temporal Web UI, when its address is known (TEMPORAL_UI_URL). */
export const WorkflowLink: FC<{ ui: WebUi | undefined; workflowId: string; label?: string }> = ({
  ui,
  workflowId,
  label,
}) =>
  ui ? (
    <a
      href={`${ui.url}/namespaces/${encodeURIComponent(ui.namespace)}/workflows/${encodeURIComponent(workflowId)}`}
    >
      {label ?? 'Web UI'}
    </a>
  ) : (
    <span class="muted">{label ?? workflowId}</span>
  );

export interface WebUi {
  url: string;
  namespace: string;
}
