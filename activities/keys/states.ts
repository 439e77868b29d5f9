/**
 * What a key in a token is for and where it is in its life (NIST SP 800-57 Part 1, 7.1), derived
 * from what the token says about it: its label, its usage attributes, its dates and certificate.
 */
import type { PkiConfig } from '../../config/profile-types.js';
import { FIELD_ENCRYPTION_KEY_LABEL } from '../../hsm/provision.js';
import type { TokenKey } from '../../hsm/token.js';
import { isGenerationOf } from '../ca/local-hsm/generations.js';

/**
 * NIST SP 800-57 key states. `compromised` is only ever set by an operator (the token cannot know);
 * `destroyed`: the inventory recorded the key and the token no longer holds it.
 */
export type KeyState = 'pre-activation' | 'active' | 'deactivated' | 'compromised' | 'destroyed';

export type KeyRole =
  | 'root-ca'
  | 'issuing-ca'
  | 'ra'
  | 'ocsp-responder'
  | 'field-encryption'
  | 'payload-kek'
  | 'service-credential'
  /** A key no configured job explains: shown, because an auditor wants to know why it is there. */
  | 'unknown';

/** The job of a key, from its label and the configuration (hsm/provision.ts names every key it makes). */
export function keyRoleOf(config: PkiConfig, label: string): KeyRole {
  const root = config.rootCa.keyLabel.replace(/\/\d+$/, '');
  if (label === root || new RegExp(`^${escapeRegExp(root)}/\\d+$`).test(label)) return 'root-ca';
  // Every generation of the profile's CA (issuing-CA rotation: `<keyLabel>/g<n>`).
  for (const profile of config.profiles)
    if (profile.ca.type === 'local-hsm' && isGenerationOf(profile.ca.keyLabel, label)) return 'issuing-ca';
  if (label === config.ra.keyLabel) return 'ra';
  if (label.startsWith('ocsp/')) return 'ocsp-responder';
  if (label === FIELD_ENCRYPTION_KEY_LABEL) return 'field-encryption';
  if (label.startsWith('payload-kek/')) return 'payload-kek';
  if (label.startsWith('service/')) return 'service-credential';
  return 'unknown';
}

/**
 * The state of a key the token holds now:
 * - pre-activation: its start date is ahead;
 * - deactivated: its end date or its certificate's end has passed, or it may no longer do anything
 *   (CKA_SIGN, CKA_DECRYPT, CKA_ENCRYPT all false: how an operator, or a finished CA rotation,
 *   retires a key in place);
 * - active otherwise. `compromised` is an operator's finding, kept by the inventory's store over
 *   whatever the token says (activities/keys/inventory.ts).
 */
export function keyState(key: TokenKey, notAfter: Date | undefined, now: Date): KeyState {
  if (key.startDate && key.startDate.getTime() > now.getTime()) return 'pre-activation';
  if (key.endDate && key.endDate.getTime() < now.getTime()) return 'deactivated';
  if (notAfter && notAfter.getTime() < now.getTime()) return 'deactivated';
  if (!key.usages.some((u) => u === 'sign' || u === 'decrypt' || u === 'encrypt')) return 'deactivated';
  return 'active';
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
