/**
 * PKCS#11 allows one operation in flight per session (else CKR_OPERATION_ACTIVE), so concurrent
 * callers borrow a session each and queue when all are busy.
 *
 * A failed call can leave its operation active (SoftHSM keeps an encryption alive after
 * CKR_ARGUMENTS_BAD, and PKCS#11 has no generic cancel), so a session that saw an error is replaced.
 */
import type { Session } from 'graphene-pk11';

export class SessionPool {
  private readonly all = new Set<Session>();
  private readonly free: Session[] = [];
  private readonly waiters: Array<(session: Session) => void> = [];
  private drained: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly openSession: () => Session,
    size: number,
    private readonly describe: string,
  ) {
    try {
      for (let i = 0; i < size; i++) this.all.add(openSession());
    } catch (e) {
      for (const s of this.all) closeQuietly(s);
      throw e;
    }
    this.free.push(...this.all);
  }

  /** Any session, for calls that act on the whole login (login, logout). */
  get first(): Session {
    const [session] = this.all;
    if (!session) throw new Error(`${this.describe} has no session`);
    return session;
  }

  async use<T>(fn: (session: Session) => T | Promise<T>): Promise<T> {
    if (this.closed) throw new Error(`${this.describe} is closed`);
    let session = this.free.pop() ?? (await new Promise<Session>((resolve) => this.waiters.push(resolve)));
    try {
      return await fn(session);
    } catch (e) {
      session = this.renew(session);
      throw e;
    } finally {
      this.release(session);
    }
  }

  /** Refuses new work and resolves once every session is back, so none is closed mid-operation. */
  async drain(): Promise<Session[]> {
    this.closed = true;
    if (this.free.length < this.all.size) {
      await new Promise<void>((resolve) => {
        this.drained = resolve;
      });
    }
    return [...this.all];
  }

  private renew(session: Session): Session {
    let fresh: Session;
    try {
      fresh = this.openSession();
    } catch {
      return session;
    }
    // Opened before closing: closing an application's last session would log it out.
    this.all.delete(session);
    this.all.add(fresh);
    closeQuietly(session);
    return fresh;
  }

  private release(session: Session): void {
    const next = this.waiters.shift();
    if (next) {
      next(session);
      return;
    }
    this.free.push(session);
    if (this.drained && this.free.length === this.all.size) this.drained();
  }
}

export function closeQuietly(session: Session): void {
  try {
    session.close();
  } catch {
    // Already gone with the token or the module: nothing to release.
  }
}
