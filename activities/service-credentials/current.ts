/**
 * The credential an adapter signs with: the `active` generation of a service credential, read from
 * the database and the data token. Cached briefly, so a rotation reaches every worker within
 * CACHE_MS without a database read per token request.
 */
import { and, eq } from 'drizzle-orm';
import type { Database } from '../../db/client.js';
import { serviceCredentials } from '../../db/schema.js';
import type { HsmToken } from '../../hsm/token.js';
import type { Signer } from '../../pki/keys.js';
import { MdmUnavailableError } from '../mdm/http.js';

const CACHE_MS = 5_000;

export interface CurrentCredential {
  generation: number;
  certificate: Uint8Array;
  signer: Signer;
}

export class ServiceCredentialSource {
  private readonly cache = new Map<string, { value: CurrentCredential; until: number }>();

  constructor(
    private readonly db: Database,
    /** The data token of this process, where service keys live. */
    private readonly token: HsmToken,
  ) {}

  async current(name: string): Promise<CurrentCredential> {
    const hit = this.cache.get(name);
    if (hit && Date.now() < hit.until) return hit.value;
    const [row] = await this.db
      .select()
      .from(serviceCredentials)
      .where(and(eq(serviceCredentials.name, name), eq(serviceCredentials.state, 'active')));
    if (!row?.certificate)
      // Thrown as unavailable: the enrollment retries and escalates until an operator registers one.
      throw new MdmUnavailableError(
        `service credential ${name} has no active certificate yet (waiting for its registration: workflow service/${name}/credential)`,
      );
    const value = {
      generation: row.generation,
      certificate: row.certificate,
      signer: await this.token.signer(row.keyLabel),
    };
    this.cache.set(name, { value, until: Date.now() + CACHE_MS });
    return value;
  }
}
