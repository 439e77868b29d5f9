/**
 * The operator console at /console on the operator listener: server-rendered pages (hono/jsx) over
 * the operator API (api/console/operator-api.ts). Overview, the escalation and approval queue, device
 * search and the device page with revoke, the HSM key inventory; each enrollment and device links
 * to its workflow in the Temporal Web UI (TEMPORAL_UI_URL), which stays the place to inspect a
 * single workflow.
 */
import type { Client } from '@temporalio/client';
import { type Context, Hono } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { csrf } from 'hono/csrf';
import type { Child } from 'hono/jsx';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { InventoryKey } from '../../activities/keys/store.js';
import type { DailyReport } from '../../activities/reports/report.js';
import type { PkiConfig } from '../../config/profile-types.js';
import { OPERATOR_REVOCATION_REASONS } from '../../workflows/definitions.js';
import type { OperatorAuthOptions, OperatorEnv } from '../http/auth.js';
import { rateLimit } from '../http/rate-limit.js';
import { type ApiAnswer, operatorApiClient } from './operator-api.js';
import { DevicePage, type DeviceRow, DeviceSearchPage, type DeviceView } from './pages/devices.js';
import { KeysPage } from './pages/keys.js';
import { Layout, type Section, type WebUi } from './pages/layout.js';
import { LoginPage } from './pages/login.js';
import { OverviewPage } from './pages/overview.js';
import { type QueueItem, QueuePage } from './pages/queue.js';
import { type ConsoleEnv, consoleSessions } from './session.js';
import { isSavedView, SAVED_VIEWS, savedViewUrl } from './views.js';

export interface ConsoleDeps {
  config: PkiConfig;
  temporal: Client;
  /** The operator API app: every read and every action of the console goes through it. */
  operatorApi: Hono<OperatorEnv>;
  auth: OperatorAuthOptions;
}

const NOTICE_COOKIE = 'pki_console_notice';

export function consoleRoutes(deps: ConsoleDeps): Hono<ConsoleEnv> {
  const app = new Hono<ConsoleEnv>();
  const sessions = consoleSessions(deps.auth);
  const api = operatorApiClient(deps.operatorApi);
  const ui = (): WebUi | undefined => {
    const url = (deps.auth.env ?? process.env).TEMPORAL_UI_URL;
    return url ? { url: url.replace(/\/+$/, ''), namespace: deps.temporal.options.namespace } : undefined;
  };

  // Forms post from our own pages only (Origin checked); the session cookie is SameSite=Strict too.
  app.use('/console/*', csrf());
  app.use('/console', csrf());

  // Each guess at the operator token costs the guesser: a login form needs no credential to reach.
  app.post('/console/login', rateLimit('login'));
  app.get('/console/login', (c) => html(c, <LoginPage next={safeNext(c.req.query('next'))} />));
  app.post('/console/login', async (c) => {
    const form = await c.req.parseBody();
    const name = String(form.name ?? '')
      .trim()
      .slice(0, 64);
    const next = safeNext(String(form.next ?? ''));
    if (!name) return html(c, <LoginPage next={next} error="give your name" />, 400);
    const result = await sessions.login(c, { token: String(form.token ?? ''), name });
    if (!result.ok) return html(c, <LoginPage next={next} error={result.error} />, result.status);
    return c.redirect(next, 303);
  });
  app.post('/console/logout', (c) => {
    sessions.logout(c);
    return c.redirect('/console/login', 303);
  });

  app.use('/console', sessions.required);
  app.use('/console/*', sessions.required);

  const page = (c: Context<ConsoleEnv>, title: string, section: Section, body: Child, status = 200) => {
    const notice = takeNotice(c);
    return html(
      c,
      <Layout title={title} section={section} operatorName={c.get('operatorName')} notice={notice}>
        {body}
      </Layout>,
      status as ContentfulStatusCode,
    );
  };
  const failure = (
    c: Context<ConsoleEnv>,
    title: string,
    section: Section,
    answer: { status: number; error: string },
  ) =>
    page(
      c,
      title,
      section,
      <p class="notice error">{answer.error}</p>,
      answer.status >= 500 ? 502 : answer.status,
    );

  const queue = async (c: Context<ConsoleEnv>) => {
    const [escalated, awaiting] = await Promise.all([
      api<{ enrollments: QueueItem[] }>(c, 'GET', '/operator/enrollments?status=escalated&limit=500'),
      api<{ enrollments: QueueItem[] }>(c, 'GET', '/operator/enrollments?status=awaiting-approval&limit=500'),
    ]);
    return { escalated, awaiting };
  };

  app.get('/console', async (c) => {
    const [{ escalated, awaiting }, dates] = await Promise.all([
      queue(c),
      api<{ reports: Array<{ reportDate: string }> }>(c, 'GET', '/operator/reports?limit=1'),
    ]);
    if (!escalated.ok) return failure(c, 'Overview', 'overview', escalated);
    if (!awaiting.ok) return failure(c, 'Overview', 'overview', awaiting);
    if (!dates.ok) return failure(c, 'Overview', 'overview', dates);
    const latest = dates.body.reports[0]?.reportDate;
    const report = latest ? await api<DailyReport>(c, 'GET', `/operator/reports/${latest}`) : undefined;
    if (report && !report.ok) return failure(c, 'Overview', 'overview', report);
    return page(
      c,
      'Overview',
      'overview',
      <OverviewPage
        escalated={escalated.body.enrollments.length}
        awaiting={awaiting.body.enrollments.length}
        report={report?.ok ? report.body : undefined}
      />,
    );
  });

  app.post('/console/reports/run', async (c) => {
    const answer = await api(c, 'POST', '/operator/reports/run', { by: c.get('operatorName') });
    return afterAction(c, answer, 'daily report run', '/console');
  });

  app.get('/console/reports/:file{[0-9]{4}-[0-9]{2}-[0-9]{2}\\.csv}', (c) =>
    api.forward(c, `/operator/reports/${c.req.param('file')}`),
  );

  app.get('/console/queue', async (c) => {
    const { escalated, awaiting } = await queue(c);
    if (!escalated.ok) return failure(c, 'Escalations and approvals', 'queue', escalated);
    if (!awaiting.ok) return failure(c, 'Escalations and approvals', 'queue', awaiting);
    return page(
      c,
      'Escalations and approvals',
      'queue',
      <QueuePage escalated={escalated.body.enrollments} awaiting={awaiting.body.enrollments} ui={ui()} />,
    );
  });

  app.post('/console/keys/compromised', async (c) => {
    const form = await c.req.parseBody();
    const label = String(form.label ?? '');
    const answer = await api(c, 'POST', '/operator/keys/compromised', {
      token: String(form.token ?? ''),
      label,
      by: c.get('operatorName'),
      note: String(form.note ?? '').trim(),
    });
    return afterAction(c, answer, `${label} marked compromised`, '/console/keys');
  });

  app.get('/console/keys', async (c) => {
    const inventory = await api<{ observedAt: string | null; keys: InventoryKey[] }>(
      c,
      'GET',
      '/operator/keys',
    );
    if (!inventory.ok) return failure(c, 'Keys', 'keys', inventory);
    return page(
      c,
      'Keys',
      'keys',
      <KeysPage observedAt={inventory.body.observedAt} keys={inventory.body.keys} />,
    );
  });

  app.post('/console/enrollments/:action{retry|approve|reject}', async (c) => {
    const action = c.req.param('action');
    const form = await c.req.parseBody();
    const workflowId = String(form.workflowId ?? '');
    const body: Record<string, unknown> = { by: c.get('operatorName') };
    if (action === 'reject') body.reason = String(form.reason ?? '').trim();
    const answer = await api(
      c,
      'POST',
      `/operator/enrollments/${encodeURIComponent(workflowId)}/${action}`,
      body,
    );
    return afterAction(c, answer, `${action} sent to ${workflowId}`, '/console/queue');
  });

  app.get('/console/views/:view', (c) => {
    const view = c.req.param('view');
    const known = Object.keys(SAVED_VIEWS).join(', ');
    if (!isSavedView(view))
      return page(c, 'Saved views', 'overview', <p>Unknown view. Views: {known}.</p>, 404);
    const webUi = ui();
    if (!webUi)
      return page(c, 'Saved views', 'overview', <p>TEMPORAL_UI_URL is not set: no Web UI to open.</p>, 404);
    return c.redirect(savedViewUrl(webUi, view), 303);
  });

  app.get('/console/devices', async (c) => {
    const q = c.req.query('q') ?? '';
    const profile = c.req.query('profile') ?? '';
    const profiles = deps.config.profiles.map((p) => p.name);
    let devices: DeviceRow[] | undefined;
    if (c.req.query('q') !== undefined) {
      const params = new URLSearchParams({ q, ...(profile ? { profile } : {}) });
      const found = await api<{ devices: DeviceRow[] }>(c, 'GET', `/operator/devices?${params}`);
      if (!found.ok) return failure(c, 'Devices', 'devices', found);
      devices = found.body.devices;
    }
    return page(
      c,
      'Devices',
      'devices',
      <DeviceSearchPage q={q} profile={profile} profiles={profiles} devices={devices} />,
    );
  });

  const devicePath = (c: Context<ConsoleEnv>) =>
    `/operator/devices/${encodeURIComponent(c.req.param('profile') ?? '')}/${encodeURIComponent(c.req.param('deviceId') ?? '')}`;

  app.get('/console/devices/:profile/:deviceId', async (c) => {
    const device = await api<DeviceView>(c, 'GET', devicePath(c));
    const title = `Device ${c.req.param('deviceId')}`;
    if (!device.ok) return failure(c, title, 'devices', device);
    return page(
      c,
      title,
      'devices',
      <DevicePage device={device.body} reasons={OPERATOR_REVOCATION_REASONS} ui={ui()} />,
    );
  });

  app.post('/console/devices/:profile/:deviceId/:action{revoke|readmit}', async (c) => {
    const action = c.req.param('action');
    const form = await c.req.parseBody();
    const body: Record<string, unknown> = { by: c.get('operatorName') };
    if (action === 'revoke') body.reason = String(form.reason ?? 'unspecified');
    const answer = await api(c, 'POST', `${devicePath(c)}/${action}`, body);
    const back = `/console/devices/${encodeURIComponent(c.req.param('profile'))}/${encodeURIComponent(c.req.param('deviceId'))}`;
    return afterAction(c, answer, `${action} sent to ${c.req.param('deviceId')}`, back);
  });

  return app;
}

/** A whole page: the doctype keeps browsers out of quirks mode (JSX cannot write it). */
async function html(
  c: Context,
  page: { toString(): string | Promise<string> },
  status: ContentfulStatusCode = 200,
) {
  return c.html(`<!doctype html>${await page.toString()}`, status);
}

/** Post/redirect/get: the outcome is shown once on the page the operator returns to. */
function afterAction(c: Context<ConsoleEnv>, answer: ApiAnswer<unknown>, done: string, back: string) {
  const notice = answer.ok ? { kind: 'ok', text: done } : { kind: 'error', text: answer.error };
  setCookie(c, NOTICE_COOKIE, encodeURIComponent(JSON.stringify(notice)), {
    path: '/console',
    httpOnly: true,
    secure: true,
    sameSite: 'Strict',
    maxAge: 60,
  });
  return c.redirect(back, 303);
}

function takeNotice(c: Context<ConsoleEnv>): { kind: 'ok' | 'error'; text: string } | undefined {
  const raw = getCookie(c, NOTICE_COOKIE);
  if (!raw) return undefined;
  deleteCookie(c, NOTICE_COOKIE, { path: '/console', secure: true });
  try {
    const notice = JSON.parse(decodeURIComponent(raw)) as { kind?: unknown; text?: unknown };
    if ((notice.kind === 'ok' || notice.kind === 'error') && typeof notice.text === 'string')
      return { kind: notice.kind, text: notice.text.slice(0, 500) };
  } catch {}
  return undefined;
}

/** Only a console page may follow the login: never another site (an open redirect). */
function safeNext(next: string | undefined): string {
  return next && /^\/console(\/|$|\?)/.test(next) && !next.startsWith('//') ? next : '/console';
}
