/**
 * The tokens one process opened: only those of its job (key custody). Asking for another one is a
 * programming or deployment error, named as such, never a silent fallback to a token that holds
 * more keys than the job needs.
 */
import type { TokenRole } from '../config/runtime.js';
import type { HsmToken } from './token.js';

export class TokenSet {
  constructor(private readonly tokens: Partial<Record<TokenRole, HsmToken>>) {}

  /** The token of a role; throws when this process does not hold it. */
  get(role: TokenRole): HsmToken {
    const token = this.tokens[role] ?? (role === 'root' ? this.tokens.ca : undefined);
    if (!token)
      throw new Error(
        `this process holds no ${role.toUpperCase()} token (key custody: it opened ${this.roles().join(', ') || 'none'})`,
      );
    return token;
  }

  has(role: TokenRole): boolean {
    return this.tokens[role] !== undefined;
  }

  roles(): TokenRole[] {
    return Object.keys(this.tokens) as TokenRole[];
  }

  async close(): Promise<void> {
    // One token may serve two roles (the root on the CA token): close each once.
    for (const token of new Set(Object.values(this.tokens))) await token.close();
  }
}
