/** The key inventory: every key of every HSM token, its state, certificate end and signatures (GET /operator/keys). */
import type { FC } from 'hono/jsx';
import type { InventoryKey } from '../../../activities/keys/store.js';

export const KeysPage: FC<{ observedAt: string | null; keys: InventoryKey[] }> = ({ observedAt, keys }) => (
  <>
    <p class="muted">
      Each token is listed by the process that holds it (key custody); the oldest listing shown is from{' '}
      {observedAt ?? 'never'}.
    </p>
    {keys.length === 0 ? (
      <p class="muted">No process has recorded its tokens yet.</p>
    ) : (
      <table data-testid="keys">
        <tr>
          <th>Token</th>
          <th>Label</th>
          <th>Role</th>
          <th>Algorithm</th>
          <th>Created</th>
          <th>State</th>
          <th>Certificate</th>
          <th>Expires</th>
          <th>Signatures</th>
          <th>Observed</th>
          <th>Compromised?</th>
        </tr>
        {keys.map((k) => (
          <tr data-token={k.token} data-label={k.label} data-state={k.state}>
            <td>{k.token}</td>
            <td>{k.label}</td>
            <td>{k.role}</td>
            <td>{k.algorithm}</td>
            <td>{k.createdAt.slice(0, 10)}</td>
            <td>{k.state}</td>
            <td>{k.certificate ? `${k.certificate.subject} (serial ${k.certificate.serial})` : ''}</td>
            <td>{k.notAfter?.slice(0, 10) ?? ''}</td>
            <td>{k.signatures}</td>
            <td>{k.observedAt}</td>
            <td>
              {k.state === 'compromised' || k.state === 'destroyed' ? (
                ''
              ) : (
                <form method="post" action="/console/keys/compromised" class="inline">
                  <input type="hidden" name="token" value={k.token} />
                  <input type="hidden" name="label" value={k.label} />
                  <input name="note" placeholder="why" maxlength={500} required />
                  <button type="submit">Mark compromised</button>
                </form>
              )}
            </td>
          </tr>
        ))}
      </table>
    )}
  </>
);
