import type { FC } from 'hono/jsx';
import { Layout } from './layout.js';

export const LoginPage: FC<{ next: string; error?: string | undefined }> = ({ next, error }) => (
  <Layout title="Log in" notice={error ? { kind: 'error', text: error } : undefined}>
    <form method="post" action="/console/login">
      <input type="hidden" name="next" value={next} />
      <p>
        <label>
          Your name (recorded with every action)
          <br />
          <input name="name" required maxlength={64} autocomplete="username" />
        </label>
      </p>
      <p>
        <label>
          Operator token
          <br />
          <input name="token" type="password" required autocomplete="current-password" />
        </label>
      </p>
      <button type="submit">Log in</button>
      <p class="muted">With an operator client certificate no login is needed.</p>
    </form>
  </Layout>
);
