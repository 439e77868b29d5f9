/** Device search, and one device: its lifecycle, certificates and audit trail, and the revoke form. */
import type { FC } from 'hono/jsx';
import { type WebUi, WorkflowLink } from './layout.js';

export interface DeviceRow {
  profile: string;
  deviceId: string;
  status: string;
  certificateNotAfter: string | null;
  blockedAt: string | null;
}

export const DeviceSearchPage: FC<{
  q: string;
  profile: string;
  profiles: string[];
  devices: DeviceRow[] | undefined;
}> = ({ q, profile, profiles, devices }) => (
  <>
    <form method="get" action="/console/devices">
      <input name="q" value={q} placeholder="device id starts with…" maxlength={128} autofocus />{' '}
      <select name="profile">
        <option value="">all profiles</option>
        {profiles.map((p) => (
          <option value={p} selected={p === profile}>
            {p}
          </option>
        ))}
      </select>{' '}
      <button type="submit">Search</button>
    </form>
    {devices && (
      <table data-testid="devices">
        <tr>
          <th>Device</th>
          <th>Profile</th>
          <th>State</th>
          <th>Certificate expires</th>
          <th>Blocked</th>
        </tr>
        {devices.map((d) => (
          <tr>
            <td>
              <a href={`/console/devices/${encodeURIComponent(d.profile)}/${encodeURIComponent(d.deviceId)}`}>
                {d.deviceId}
              </a>
            </td>
            <td>{d.profile}</td>
            <td>{d.status}</td>
            <td>{d.certificateNotAfter ?? ''}</td>
            <td>{d.blockedAt ? 'yes' : ''}</td>
          </tr>
        ))}
        {devices.length === 0 && (
          <tr>
            <td colspan={5} class="muted">
              No device matches.
            </td>
          </tr>
        )}
      </table>
    )}
  </>
);

export interface DeviceView {
  profile: string;
  deviceId: string;
  workflowId: string;
  lifecycle: { executionStatus: string; state?: { status?: string }; stateError?: string } | null;
  blocked: { at: string; reason: string | null } | null;
  certificates: Array<{
    serialHex: string;
    issuingCa: string;
    status: string;
    subject: string;
    notBefore: string;
    notAfter: string;
    enrollmentId: string | null;
    revocation: { revokedAt: string | null; reason: string | null } | null;
  }>;
  audit: Array<{ occurredAt: string; actor: string; action: string; subject: string; details: unknown }>;
}

export const DevicePage: FC<{ device: DeviceView; reasons: readonly string[]; ui: WebUi | undefined }> = ({
  device,
  reasons,
  ui,
}) => {
  const base = `/console/devices/${encodeURIComponent(device.profile)}/${encodeURIComponent(device.deviceId)}`;
  return (
    <>
      <p>
        Profile <strong>{device.profile}</strong> · lifecycle{' '}
        <strong data-testid="lifecycle-status">
          {device.lifecycle?.state?.status ?? device.lifecycle?.executionStatus ?? 'none'}
        </strong>{' '}
        · <WorkflowLink ui={ui} workflowId={device.workflowId} label="lifecycle in the Web UI" />
        {device.blocked && (
          <>
            {' '}
            · <strong>blocked</strong> since {device.blocked.at} ({device.blocked.reason})
          </>
        )}
      </p>
      <h2>Certificates</h2>
      <table data-testid="certificates">
        <tr>
          <th>Serial</th>
          <th>State</th>
          <th>Valid from</th>
          <th>Valid until</th>
          <th>Issuing CA</th>
          <th>Enrollment</th>
        </tr>
        {device.certificates.map((cert) => (
          <tr>
            <td>
              <code>{cert.serialHex}</code>
            </td>
            <td class={`state-${cert.status}`}>
              {cert.status}
              {cert.revocation?.reason ? ` (${cert.revocation.reason})` : ''}
            </td>
            <td>{cert.notBefore}</td>
            <td>{cert.notAfter}</td>
            <td>{cert.issuingCa}</td>
            <td>{cert.enrollmentId && <WorkflowLink ui={ui} workflowId={cert.enrollmentId} />}</td>
          </tr>
        ))}
      </table>
      <h2>Revoke</h2>
      <form method="post" action={`${base}/revoke`} class="inline">
        <select name="reason" aria-label="revocation reason">
          {reasons.map((r) => (
            <option value={r}>{r}</option>
          ))}
        </select>
        <button type="submit">Revoke every valid certificate of this device</button>
      </form>
      {device.blocked && (
        <form method="post" action={`${base}/readmit`} class="inline">
          {' '}
          <button type="submit">Readmit</button>
        </form>
      )}
      <h2>Audit trail (latest {device.audit.length})</h2>
      <table data-testid="audit">
        <tr>
          <th>When</th>
          <th>Who</th>
          <th>What</th>
          <th>Details</th>
        </tr>
        {device.audit.map((a) => (
          <tr>
            <td>{a.occurredAt}</td>
            <td>{a.actor}</td>
            <td>{a.action}</td>
            <td>
              <code>{JSON.stringify(a.details)}</code>
            </td>
          </tr>
        ))}
      </table>
    </>
  );
};
