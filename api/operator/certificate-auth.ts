/**
 * Operators' client certificates: issued by this product under the operators' profile (SCEP with a
 * one-time challenge bound to the operator's name). TLS has checked the chain; here the certificate
 * must be one on record, of that profile, valid and not revoked (a revoked operator is out at once,
 * whatever the TLS layer cached). The operator's name is the identity it was issued to.
 */
import { createHash } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type { PkiConfig } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { certificates } from '../../db/schema.js';
import { operatorsProfile } from '../../runtime/operator-tls.js';

export function operatorCertificateVerifier(db: Database, config: PkiConfig) {
  const profile = operatorsProfile(config).name;
  return async (der: Uint8Array): Promise<{ name: string } | { refused: string }> => {
    const sha256Hex = createHash('sha256').update(der).digest('hex');
    const [row] = await db
      .select({
        profile: certificates.profile,
        deviceId: certificates.deviceId,
        status: certificates.status,
        notBefore: certificates.notBefore,
        notAfter: certificates.notAfter,
        serialHex: certificates.serialHex,
      })
      .from(certificates)
      .where(eq(certificates.sha256Hex, sha256Hex));
    if (!row) return { refused: 'not a certificate this product issued' };
    if (row.profile !== profile) return { refused: `issued under profile ${row.profile}, not ${profile}` };
    if (row.status === 'revoked') return { refused: `certificate ${row.serialHex} is revoked` };
    const now = new Date();
    if (now < row.notBefore || now >= row.notAfter)
      return { refused: `certificate ${row.serialHex} is not valid now` };
    return { name: row.deviceId };
  };
}
