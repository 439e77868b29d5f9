/**
 * Who a certificate is for (DESIGN.md "Trust model"): a request names the identity it wants, only a
 * verifier can vouch for one. Plain data and pure functions: the workflow and the CA adapters both
 * read it, and it is stored with each certificate so a renewal keeps the identity it renews.
 */

/** Who stands behind an identity. `null`: nobody, the requester named itself (static challenge...). */
export type Voucher = 'intune' | 'jamf' | 'challenge-webhook' | 'one-time-challenge' | null;

/**
 * Attributes a verifier stands behind, usable in a profile's subject template as
 * `{{device.<name>}}`. Scalars name one value; lists expand to one SAN entry per value.
 */
export const IDENTITY_ATTRIBUTES = {
  /** The device id: the key of the device's lifecycle and of its certificates. */
  id: 'scalar',
  commonName: 'scalar',
  serialNumber: 'scalar',
  udid: 'scalar',
  /** The name the MDM shows (Jamf's device name). */
  name: 'scalar',
  /** Intune's device id (SAN URI IntuneDeviceId://<id>). */
  intuneDeviceId: 'scalar',
  upn: 'scalar',
  email: 'list',
  dns: 'list',
  uri: 'list',
} as const;

export type IdentityAttributeName = keyof typeof IDENTITY_ATTRIBUTES;
export type ScalarAttributeName = {
  [K in IdentityAttributeName]: (typeof IDENTITY_ATTRIBUTES)[K] extends 'scalar' ? K : never;
}[IdentityAttributeName];
export type ListAttributeName = Exclude<IdentityAttributeName, ScalarAttributeName>;

export type IdentityAttributes = Partial<Record<ScalarAttributeName, string>> &
  Partial<Record<ListAttributeName, string[]>>;

export interface VerifiedIdentity {
  deviceId: string;
  vouchedBy: Voucher;
  attributes: IdentityAttributes;
}

/** Device ids become workflow ids and URL segments: no slash, backslash or control character. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const FORBIDDEN_IN_DEVICE_ID = /[/\\\u0000-\u001f\u007f]/u;

/** Why a device id cannot be used, or undefined when it can. */
export function deviceIdProblem(deviceId: string | undefined): string | undefined {
  if (deviceId === undefined || deviceId === '') return 'no device id';
  if (deviceId.length > 128) return 'device id is longer than 128 characters';
  if (FORBIDDEN_IN_DEVICE_ID.test(deviceId))
    return 'device id holds a slash, a backslash or a control character';
  if (deviceId.trim() !== deviceId) return 'device id starts or ends with white space';
  return undefined;
}

/**
 * An identity that names itself (static challenge, one-time challenge bound to no device, a webhook
 * that allowed the request without naming the device): the CSR's CN is the device id, nothing else
 * is vouched for.
 */
export function requesterChosenIdentity(commonName: string | undefined): VerifiedIdentity | string {
  const problem = deviceIdProblem(commonName);
  if (problem) return `the request names no usable device (CN): ${problem}`;
  return { deviceId: commonName!, vouchedBy: null, attributes: { id: commonName!, commonName } };
}

/** A vouched identity; `id` is always the device id. */
export function vouchedIdentity(
  vouchedBy: Exclude<Voucher, null>,
  deviceId: string,
  attributes: IdentityAttributes,
): VerifiedIdentity | string {
  const problem = deviceIdProblem(deviceId);
  if (problem) return `${vouchedBy} vouched for an unusable device id: ${problem}`;
  const clean: IdentityAttributes = {};
  for (const [name, value] of Object.entries(attributes) as Array<[IdentityAttributeName, unknown]>) {
    if (IDENTITY_ATTRIBUTES[name] === 'scalar' && typeof value === 'string' && value.trim() !== '')
      (clean as Record<string, string>)[name] = value.trim();
    if (IDENTITY_ATTRIBUTES[name] === 'list' && Array.isArray(value)) {
      const list = value.filter((v): v is string => typeof v === 'string' && v.trim() !== '');
      if (list.length > 0) (clean as Record<string, string[]>)[name] = list.map((v) => v.trim());
    }
  }
  return { deviceId, vouchedBy, attributes: { ...clean, id: deviceId } };
}
