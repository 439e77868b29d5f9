/**
 * A profile's subject template: the certificate's subject and SANs come from the verified identity,
 * never from what the CSR asks for. Pure: the workflow runs it to refuse early and to show operators
 * what would be issued; the CA adapter runs it again before signing, so a forged workflow input
 * cannot widen a certificate.
 *
 * Values are text with placeholders `{{device.<attribute>}}` (pki/admission/identity.ts). In the
 * subject, an attribute whose placeholders have no value is left out; in SANs, a list attribute
 * expands to one entry per value and an entry without a value is left out.
 */
import { attributeType } from '../x509/attribute-types.js';
import {
  IDENTITY_ATTRIBUTES,
  type IdentityAttributeName,
  type IdentityAttributes,
  type VerifiedIdentity,
} from './identity.js';

export interface SubjectTemplate {
  /** [attribute type, value template], one attribute per RDN, in order. */
  subject: Array<[string, string]>;
  subjectAltNames: { dns: string[]; email: string[]; uri: string[] };
  /** What happens to subject attributes, SANs and extensions a CSR asks for that the template does not give. */
  csrExtras: 'drop' | 'refuse';
  /**
   * Whether a request without a vouched identity (static challenge, unbound one-time challenge) may
   * name itself: its CN becomes the device id. Every other attribute still comes from the template.
   */
  requesterChosenCommonName: boolean;
}

/** What the CSR asked for, as the API read it (workflows/definitions.ts CsrSummary carries it). */
export interface CsrRequest {
  /** Subject attributes in DER order, by OID. */
  subjectAttributes: Array<{ type: string; value: string }>;
  subjectAltNames: { dns: string[]; email: string[]; uri: string[]; ip: string[] };
  /** Whether its extension request asks for a CA certificate (basicConstraints cA TRUE). */
  requestsCa: boolean;
}

export interface CertificateSubject {
  subject: Array<[string, string]>;
  subjectAltNames: { dns: string[]; email: string[]; uri: string[]; ip: string[] };
}

export type TemplateOutcome =
  | { ok: true; certificate: CertificateSubject; dropped: string[] }
  | { ok: false; reason: string };

const PLACEHOLDER = /\{\{\s*device\.([A-Za-z]+)\s*\}\}/g;

/** Problems with a template's placeholders and attribute types (checked when the config loads). */
export function templateProblems(template: Pick<SubjectTemplate, 'subject' | 'subjectAltNames'>): string[] {
  const problems: string[] = [];
  const check = (where: string, text: string, allowLists: boolean) => {
    for (const [, name] of text.matchAll(PLACEHOLDER)) {
      const kind = IDENTITY_ATTRIBUTES[name as IdentityAttributeName];
      if (!kind)
        problems.push(
          `${where}: unknown placeholder device.${name} (known: ${Object.keys(IDENTITY_ATTRIBUTES).join(', ')})`,
        );
      else if (kind === 'list' && !allowLists)
        problems.push(`${where}: device.${name} is a list; lists belong in subjectAltNames`);
    }
    if (/\{\{|\}\}/.test(text.replace(PLACEHOLDER, '')))
      problems.push(`${where}: malformed placeholder (write {{device.<attribute>}})`);
  };
  template.subject.forEach(([type, value], i) => {
    if (!attributeType(type)) problems.push(`subject.${i}: unknown attribute type ${type}`);
    check(`subject.${i}`, value, false);
  });
  for (const kind of ['dns', 'email', 'uri'] as const)
    template.subjectAltNames[kind].forEach((value, i) => {
      check(`subjectAltNames.${kind}.${i}`, value, true);
    });
  return problems;
}

/** The certificate's subject and SANs for this identity, or why the request cannot have one. */
export function applySubjectTemplate(
  template: SubjectTemplate,
  identity: VerifiedIdentity,
  csr: CsrRequest,
): TemplateOutcome {
  if (identity.vouchedBy === null && !template.requesterChosenCommonName)
    return {
      ok: false,
      reason:
        'nothing vouched for this device (a static or unbound one-time challenge) and the profile ' +
        'does not accept requester-chosen names',
    };
  const attributes: IdentityAttributes = { ...identity.attributes, id: identity.deviceId };
  const subject: Array<[string, string]> = [];
  for (const [type, value] of template.subject) {
    const [text] = expand(value, attributes);
    if (text !== undefined && text !== '') subject.push([type, text]);
  }
  const sans = { dns: [] as string[], email: [] as string[], uri: [] as string[], ip: [] as string[] };
  for (const kind of ['dns', 'email', 'uri'] as const)
    for (const value of template.subjectAltNames[kind])
      for (const text of expand(value, attributes))
        if (text !== '' && !sans[kind].includes(text)) sans[kind].push(text);
  if (subject.length === 0 && sans.dns.length + sans.email.length + sans.uri.length === 0)
    return { ok: false, reason: 'the subject template yields neither a subject nor a SAN for this device' };

  const extras = csrExtras(csr, { subject, subjectAltNames: sans });
  if (extras.length > 0 && template.csrExtras === 'refuse')
    return { ok: false, reason: `the request asks for what the profile does not give: ${extras.join('; ')}` };
  return { ok: true, certificate: { subject, subjectAltNames: sans }, dropped: extras };
}

/**
 * The template text with placeholders replaced: one result per value of a list attribute (only one
 * list per text expands), none when a placeholder has no value.
 */
function expand(text: string, attributes: IdentityAttributes): string[] {
  const names = [...text.matchAll(PLACEHOLDER)].map((m) => m[1] as IdentityAttributeName);
  const list = names.find((n) => IDENTITY_ATTRIBUTES[n] === 'list');
  const listValues = list ? ((attributes[list] as string[] | undefined) ?? []) : [undefined];
  const results: string[] = [];
  for (const item of listValues) {
    let missing = false;
    const value = text.replace(PLACEHOLDER, (_, name: IdentityAttributeName) => {
      const v = IDENTITY_ATTRIBUTES[name] === 'list' ? item : (attributes[name] as string | undefined);
      if (v === undefined || v === '') missing = true;
      return v ?? '';
    });
    if (!missing) results.push(value);
  }
  return results;
}

/** What the CSR asks for beyond the certificate the template gives, in words for the audit trail. */
function csrExtras(csr: CsrRequest, given: CertificateSubject): string[] {
  const extras: string[] = [];
  const givenSubject = given.subject.map(([type, value]) => `${attributeType(type)?.oid}=${value}`);
  for (const { type, value } of csr.subjectAttributes)
    if (!givenSubject.includes(`${type}=${value}`))
      extras.push(`subject ${attributeType(type)?.short ?? type}=${value}`);
  for (const kind of ['dns', 'email', 'uri', 'ip'] as const)
    for (const value of csr.subjectAltNames[kind])
      if (!given.subjectAltNames[kind].includes(value)) extras.push(`SAN ${kind}:${value}`);
  if (csr.requestsCa) extras.push('a CA certificate (basicConstraints cA)');
  return extras;
}
