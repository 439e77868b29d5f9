/** PEM (RFC 7468) armour around DER, and back: the one place this project spells it. */

export function toPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const lines =
    Buffer.from(der)
      .toString('base64')
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** The DER of the first PEM block of `text` (any label); throws when there is none. */
export function fromPem(text: string): Uint8Array {
  const body = /-----BEGIN [^-]+-----([\s\S]+?)-----END [^-]+-----/.exec(text)?.[1];
  if (!body) throw new Error('not PEM: no BEGIN/END block');
  return new Uint8Array(Buffer.from(body.replace(/\s+/g, ''), 'base64'));
}
