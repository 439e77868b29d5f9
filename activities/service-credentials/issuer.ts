/**
 * `pki-hsm` activity: the credential certificate of a service key, signed by the issuing CA key of
 * an internal profile (CA token), as the OCSP responder certificates are
 * (ca/local-hsm/delegated-certificate.ts): the key to certify is taken from the database row the
 * `pki` side wrote when it made the key (never from the workflow input), the subject and usages from
 * the configuration, so a forged input cannot get anything else signed.
 */
import { and, eq } from 'drizzle-orm';
import type { PkiConfig } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { serviceCredentials } from '../../db/schema.js';
import type { HsmToken } from '../../hsm/token.js';
import { encodeName } from '../../pki/x509/name.js';
import type { ServiceCredentialCaActivities } from '../../workflows/activities.js';
import { serviceCredentialWorkflowId } from '../../workflows/definitions.js';
import { signDelegatedCertificate } from '../ca/local-hsm/delegated-certificate.js';
import { serviceCredentialNamed } from './registry.js';

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

export function createServiceCredentialCaActivities(deps: {
  config: PkiConfig;
  db: Database;
  token: HsmToken;
}): ServiceCredentialCaActivities {
  return {
    async issueServiceCertificate({ name, generation }) {
      const entry = serviceCredentialNamed(deps.config, name);
      if (!entry) throw new Error(`service credential ${name} is not configured on this worker`);
      if (entry.issuer.ca.type !== 'local-hsm')
        throw new Error(`service credential ${name}: profile ${entry.issuer.name} has no local CA`);
      const issuingCa = entry.issuer.ca.keyLabel;
      const where = and(eq(serviceCredentials.name, name), eq(serviceCredentials.generation, generation));
      const [row] = await deps.db.select().from(serviceCredentials).where(where);
      if (!row) throw new Error(`service credential ${name} #${generation} has no key recorded`);
      if (row.certificate && row.notAfter) return { notAfter: row.notAfter.toISOString() };
      if (row.state !== 'generated')
        throw new Error(`service credential ${name} #${generation} is ${row.state}`);
      const { der, serialHex, notAfter } = await signDelegatedCertificate(deps, {
        issuingCa,
        // The serial of this generation: a retried attempt signs with the same one.
        reservationId: `${serviceCredentialWorkflowId(name)}/${generation}`,
        spki: row.spki,
        subject: () => encodeName([['CN', `service ${name}`]]),
        validityMs: entry.settings.validitySeconds * 1000,
        now: new Date(),
        extensions: { keyUsages: ['digitalSignature'], extendedKeyUsages: [CLIENT_AUTH] },
      });
      await deps.db
        .update(serviceCredentials)
        .set({ certificate: der, serialHex, notAfter })
        .where(and(where, eq(serviceCredentials.state, 'generated')));
      return { notAfter: notAfter.toISOString() };
    },
  };
}
