/**
 * `pki-hsm` activity: the credential certificate of a service key, signed by the issuing CA key of
 * an internal profile (CA token). Like the OCSP responder certificates: the key to certify is taken
 * from the database row the `pki` side wrote when it made the key (never from the workflow input),
 * the subject and usages from the configuration, so a forged input cannot get anything else signed.
 */
import { and, eq } from 'drizzle-orm';
import type { PkiConfig } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { serviceCredentials } from '../../db/schema.js';
import type { HsmToken } from '../../hsm/token.js';
import { buildCertificate, certificateInfo } from '../../pki/x509/certificate.js';
import { encodeName } from '../../pki/x509/name.js';
import type { ServiceCredentialCaActivities } from '../../workflows/activities.js';
import { serviceCredentialWorkflowId } from '../../workflows/definitions.js';
import { reserveSerial } from '../ca/local-hsm/serials.js';
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
      const [issuer, signer] = await Promise.all([
        deps.token.certificate(issuingCa),
        deps.token.signer(issuingCa),
      ]);
      if (!issuer)
        throw new Error(`HSM token "${deps.token.tokenLabel}" holds no certificate for "${issuingCa}"`);
      const now = Date.now();
      const notBefore = new Date(now - 5 * 60_000);
      const notAfter = new Date(
        Math.min(now + entry.settings.validitySeconds * 1000, certificateInfo(issuer).notAfter.getTime()),
      );
      const { serialHex } = await reserveSerial(deps.db, {
        issuingCa,
        // The serial of this generation: a retried attempt signs with the same one.
        enrollmentId: `${serviceCredentialWorkflowId(name)}/${generation}`,
        notBefore,
        notAfter,
      });
      const der = await buildCertificate({
        serialNumber: Buffer.from(serialHex, 'hex'),
        subject: encodeName([['CN', `service ${name}`]]),
        subjectPublicKeyInfo: row.spki,
        notBefore,
        notAfter,
        issuer: { kind: 'ca', certificate: issuer, signer },
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
