/**
 * What a profile's configuration means for the workflows, snapshotted into their input when they
 * start (a config change never alters a running enrollment or lifecycle mid-way).
 */
import type { EnrollmentPolicy, LifecyclePolicy } from '../workflows/definitions.js';
import { HSM_TASK_QUEUE, TASK_QUEUE } from '../workflows/definitions.js';
import type { Profile } from './profile-types.js';
import type { CaIssuance } from './runtime.js';

/** The task queue of a profile's CA adapter: our CA signs where its key is, an upstream CA is reached over HTTPS. */
export function caTaskQueue(profile: Profile): string {
  switch (profile.ca.type) {
    case 'local-hsm':
      return HSM_TASK_QUEUE;
    case 'globalsign-atlas':
      return TASK_QUEUE;
  }
}

/** `caIssuance`: where this deployment's own CA signs (config/runtime.ts); an upstream CA is always remote. */
export function enrollmentPolicy(profile: Profile, caIssuance: CaIssuance = 'queue'): EnrollmentPolicy {
  const { template } = profile;
  return {
    minRsaBits: template.minRsaBits,
    allowedCurves: template.allowedCurves,
    validitySeconds: template.validitySeconds,
    backdateSeconds: template.backdateSeconds,
    template: {
      subject: template.subject,
      subjectAltNames: template.subjectAltNames,
      csrExtras: template.csrExtras,
      requesterChosenCommonName: template.requesterChosenCommonName,
    },
    ca:
      profile.ca.type === 'local-hsm'
        ? {
            queue: caTaskQueue(profile),
            timeoutSeconds: profile.escalation.stepTimeoutSeconds,
            ...(caIssuance === 'local' ? { signsLocally: true } : {}),
          }
        : // One Atlas poll round can take ~3 request timeouts plus the poll interval.
          { queue: caTaskQueue(profile), timeoutSeconds: 1800, heartbeatSeconds: 120 },
    renewalRequiresMdm: profile.renewalRequiresMdm,
    mdmTakesNotices: profile.mdm.type === 'intune',
    escalation: profile.escalation,
  };
}

export function lifecyclePolicy(profile: Profile): LifecyclePolicy {
  return {
    renewalFraction: profile.renewalFraction,
    renewalLeadSeconds: profile.lifecycle.renewalLeadSeconds,
    overdueMarginSeconds: profile.lifecycle.overdueMarginSeconds,
    supersededGraceSeconds: profile.lifecycle.supersededGraceSeconds,
    caQueue: caTaskQueue(profile),
  };
}
