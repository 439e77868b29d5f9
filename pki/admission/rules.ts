/**
 * Who may replace a device's certificate (DESIGN.md "Trust model"), as a pure decision over facts the
 * admission activity reads: a renewal signed by the current certificate, or a request an MDM (or a
 * bound one-time challenge) vouched for, may; a request nobody vouched for may not silently replace
 * a valid certificate; a revoked or removed device comes back only by readmission.
 */
import type { VerifiedIdentity } from './identity.js';

export interface DeviceStanding {
  /** The device holds a certificate of this profile that is valid now. */
  holdsValidCertificate: boolean;
  /** The device was revoked or removed and not readmitted since. */
  blocked?: { at: string; reason: string };
}

export interface AdmissionRules {
  takeover: 'approval' | 'refuse';
  readmission: 'operator' | 'mdm-vouched';
}

export type Admission =
  | { decision: 'admitted'; readmitted: boolean }
  | { decision: 'awaiting-approval'; reason: string }
  | { decision: 'refused'; reason: string };

export function decideAdmission(
  identity: VerifiedIdentity,
  standing: DeviceStanding,
  rules: AdmissionRules,
  isRenewal: boolean,
): Admission {
  const vouched = identity.vouchedBy !== null;
  if (standing.blocked) {
    if (rules.readmission === 'mdm-vouched' && vouched && !isRenewal)
      return { decision: 'admitted', readmitted: true };
    return {
      decision: 'refused',
      reason:
        `device ${identity.deviceId} was ${standing.blocked.reason} on ${standing.blocked.at}: ` +
        (rules.readmission === 'mdm-vouched'
          ? 'it needs an operator readmit or an enrollment its MDM vouches for'
          : 'an operator must readmit it before it gets another certificate'),
    };
  }
  if (vouched || isRenewal || !standing.holdsValidCertificate)
    return { decision: 'admitted', readmitted: false };
  const why =
    `device ${identity.deviceId} already holds a valid certificate, and this request is neither a ` +
    'renewal signed by it nor vouched for by its MDM';
  return rules.takeover === 'approval'
    ? { decision: 'awaiting-approval', reason: `${why}: an operator must approve the replacement` }
    : { decision: 'refused', reason: `${why}: the profile refuses such replacements` };
}
