/**
 * GetCACaps answer (RFC 8894 section 3.5.2). POSTPKIOperation because proxies truncate long GETs;
 * AES/DES3 with SHA-x because iOS needs both advertised; Renewal for RenewalReq.
 */
export const CAPABILITIES = [
  'POSTPKIOperation',
  'AES',
  'DES3',
  'SHA-256',
  'SHA-512',
  'SCEPStandard',
  'Renewal',
] as const;

export type Capability = (typeof CAPABILITIES)[number] | 'GetNextCACert';

/** One capability per line, as clients split on newlines. */
export function capabilitiesText(opts?: { nextCa?: boolean }): string {
  const caps: Capability[] = [...CAPABILITIES];
  if (opts?.nextCa) caps.push('GetNextCACert');
  return `${caps.join('\n')}\n`;
}
