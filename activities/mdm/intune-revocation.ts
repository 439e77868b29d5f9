/**
 * Intune's revocation channel (PKI connector, contracts.md "Revocation"): Intune hands out the
 * revocations an admin caused (device retired or wiped, SCEP profile unassigned); we revoke what is
 * ours and upload one result per request. Driven by the `intuneRevocationSync` workflow, one
 * Temporal Schedule per Intune profile (runtime/schedules.ts).
 *
 * revokeCertificate (pki-hsm) revokes locally or at the upstream CA that issued the certificate;
 * one it refuses for good is answered 4000.
 *
 * A tenant only ever touches its own profiles: a request naming (as caConfiguration) a profile of
 * another tenant, or one that is not an Intune profile, is looked up under the schedule's profile.
 *
 * Idempotent per request context: a certificate we revoked for a request context carries the audit
 * actor `intune:<requestContext>`, so a request Intune hands out again (our upload was lost) is
 * answered succeeded again instead of 4005 "already revoked".
 */
import { ApplicationFailure } from '@temporalio/common';
import { and, eq, inArray } from 'drizzle-orm';
import { findProfile } from '../../config/load.js';
import { caTaskQueue } from '../../config/policies.js';
import type { PkiConfig, Profile } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { auditEvents, certificates } from '../../db/schema.js';
import type { IntuneRevocationDecision, RevocationSyncActivities } from '../../workflows/activities.js';
import type { ServiceCredentialSource } from '../service-credentials/current.js';
import { INTUNE_REVOCATION_ERROR, type IntuneRevocationClient, intuneRevocationClient } from './intune.js';

export interface IntuneRevocationDeps {
  config: PkiConfig;
  db: Database;
  env?: NodeJS.ProcessEnv;
  /** Service credentials (Intune client certificates), when this process holds the data token. */
  credentials?: ServiceCredentialSource;
  /** Tests: a client of their own instead of the profile's Intune tenant. */
  clientFor?: (profile: Profile) => IntuneRevocationClient;
}

/** The audit actor of a revocation made for an Intune request. */
export const intuneActor = (requestContext: string) => `intune:${requestContext}`;

export function createIntuneRevocationActivities(
  deps: IntuneRevocationDeps,
): Pick<
  RevocationSyncActivities,
  'downloadIntuneRevocationRequests' | 'resolveIntuneRevocations' | 'uploadIntuneRevocationResults'
> {
  const clients = new Map<string, IntuneRevocationClient>();
  const clientOf = (name: string): IntuneRevocationClient => {
    const profile = findProfile(deps.config, name);
    if (profile?.mdm.type !== 'intune')
      throw ApplicationFailure.nonRetryable(
        `profile ${name} is not an Intune profile here`,
        'UnknownProfile',
      );
    let client = clients.get(name);
    if (!client) {
      client =
        deps.clientFor?.(profile) ??
        intuneRevocationClient(profile.mdm, {
          env: deps.env,
          ...(deps.credentials ? { credentials: deps.credentials } : {}),
        });
      clients.set(name, client);
    }
    return client;
  };

  return {
    async downloadIntuneRevocationRequests({ profile, maxRequests }) {
      const requests = await clientOf(profile).downloadRevocationRequests(maxRequests);
      return requests.map((r) => ({
        requestContext: r.requestContext,
        serialHex: r.serialHex,
        caConfiguration: r.caConfiguration,
      }));
    },

    async resolveIntuneRevocations({ profile, requests }) {
      if (requests.length === 0) return [];
      // The certificate was issued under the profile we named as caConfiguration; a request that
      // echoes none, an unknown one or one of another tenant is looked up under the schedule's profile.
      const tenant = tenantOf(findProfile(deps.config, profile));
      const profileOf = (caConfiguration: string | null) => {
        const named = caConfiguration ? findProfile(deps.config, caConfiguration) : undefined;
        return named && tenant !== undefined && tenantOf(named) === tenant ? named.name : profile;
      };
      const serials = [...new Set(requests.map((r) => r.serialHex.toLowerCase()))];
      const profiles = [...new Set(requests.map((r) => profileOf(r.caConfiguration)))];
      const rows = await deps.db
        .select({
          issuingCa: certificates.issuingCa,
          serialHex: certificates.serialHex,
          profile: certificates.profile,
          deviceId: certificates.deviceId,
          status: certificates.status,
          revocationReason: certificates.revocationReason,
        })
        .from(certificates)
        .where(and(inArray(certificates.serialHex, serials), inArray(certificates.profile, profiles)));
      const revokedSerials = rows.filter((r) => r.status === 'revoked').map((r) => r.serialHex);
      const revokedBy =
        revokedSerials.length === 0
          ? []
          : await deps.db
              .select({ subject: auditEvents.subject, actor: auditEvents.actor })
              .from(auditEvents)
              .where(
                and(
                  eq(auditEvents.action, 'certificate.revoked'),
                  inArray(auditEvents.subject, revokedSerials),
                ),
              );

      return requests.map((request): IntuneRevocationDecision => {
        const serialHex = request.serialHex.toLowerCase();
        const wanted = profileOf(request.caConfiguration);
        const row = rows.find((r) => r.serialHex === serialHex && r.profile === wanted);
        const answer = (code: number, message: string): IntuneRevocationDecision => ({
          action: 'answer',
          requestContext: request.requestContext,
          succeeded: false,
          errorCode: code,
          errorMessage: message,
        });
        if (!row)
          return answer(
            INTUNE_REVOCATION_ERROR.certificateNotFound,
            `no certificate with serial ${serialHex.toUpperCase()} in profile ${wanted}`,
          );
        const revoke: IntuneRevocationDecision = {
          action: 'revoke',
          requestContext: request.requestContext,
          issuingCa: row.issuingCa,
          serialHex,
          profile: row.profile,
          deviceId: row.deviceId,
          caQueue: caTaskQueue(findProfile(deps.config, row.profile)!),
        };
        if (row.status !== 'revoked') return revoke;
        // Revoked for this very request earlier (the upload was lost): redo it, idempotently.
        const ours = revokedBy.some(
          (a) => a.subject === serialHex && a.actor === intuneActor(request.requestContext),
        );
        if (ours) return revoke;
        return answer(
          INTUNE_REVOCATION_ERROR.alreadyRevoked,
          `certificate ${serialHex.toUpperCase()} is already revoked (${row.revocationReason ?? 'unspecified'})`,
        );
      });
    },

    async uploadIntuneRevocationResults({ profile, results }) {
      await clientOf(profile).uploadRevocationResults(results);
    },
  };
}

/** The Entra ID tenant of an Intune profile. */
function tenantOf(profile: Profile | undefined): string | undefined {
  return profile?.mdm.type === 'intune' ? profile.mdm.tenantId.toLowerCase() : undefined;
}
