/** The fleet at a glance: what waits for a person now, and the latest daily report's categories. */
import type { FC } from 'hono/jsx';

export const OverviewPage: FC<{ escalated: number; awaiting: number }> = ({ escalated, awaiting }) => (
  <>
    <div class="cards" data-testid="waiting">
      <a class="card" href="/console/queue" data-testid="escalated-count">
        <div class="n">{escalated}</div>
        <div class="l">escalated enrollments</div>
      </a>
      <a class="card" href="/console/queue" data-testid="awaiting-count">
        <div class="n">{awaiting}</div>
        <div class="l">awaiting approval</div>
      </a>
    </div>
  </>
);
