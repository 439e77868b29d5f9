import { describe, expect, it } from 'vitest';
import {
  deviceIdProblem,
  requesterChosenIdentity,
  type VerifiedIdentity,
} from '../../pki/admission/identity.js';
import { decideAdmission } from '../../pki/admission/rules.js';
import {
  applySubjectTemplate,
  type CsrRequest,
  type SubjectTemplate,
  templateProblems,
} from '../../pki/admission/subject-template.js';

const template = (over: Partial<SubjectTemplate> = {}): SubjectTemplate => ({
  subject: [
    ['CN', '{{device.id}}'],
    ['O', 'Example Corp'],
  ],
  subjectAltNames: { dns: [], email: ['{{device.email}}'], uri: ['urn:device:{{device.id}}'] },
  csrExtras: 'drop',
  requesterChosenCommonName: false,
  ...over,
});
const csr = (over: Partial<CsrRequest> = {}): CsrRequest => ({
  subjectAttributes: [{ type: '2.5.4.3', value: 'laptop-1' }],
  subjectAltNames: { dns: [], email: [], uri: [], ip: [] },
  requestsCa: false,
  ...over,
});
const vouched: VerifiedIdentity = {
  deviceId: 'laptop-1',
  vouchedBy: 'intune',
  attributes: { id: 'laptop-1', email: ['alice@example.com', 'a.l@example.com'] },
};

describe('the subject template', () => {
  it('builds subject and SANs from the verified identity, a list attribute giving one SAN per value', () => {
    expect(applySubjectTemplate(template(), vouched, csr())).toEqual({
      ok: true,
      certificate: {
        subject: [
          ['CN', 'laptop-1'],
          ['O', 'Example Corp'],
        ],
        subjectAltNames: {
          dns: [],
          email: ['alice@example.com', 'a.l@example.com'],
          uri: ['urn:device:laptop-1'],
          ip: [],
        },
      },
      dropped: [],
    });
  });

  it('drops what the CSR asks beyond the template (another O, extra SANs, a CA), or refuses it, as the profile says', () => {
    const greedy = csr({
      subjectAttributes: [
        { type: '2.5.4.3', value: 'laptop-1' },
        { type: '2.5.4.10', value: 'Evil Corp' },
      ],
      subjectAltNames: { dns: ['vpn.example.com'], email: [], uri: [], ip: ['10.0.0.1'] },
      requestsCa: true,
    });
    const dropped = applySubjectTemplate(template(), vouched, greedy);
    expect(dropped.ok && dropped.certificate.subject).toEqual([
      ['CN', 'laptop-1'],
      ['O', 'Example Corp'],
    ]);
    expect(dropped.ok && dropped.dropped).toEqual([
      'subject O=Evil Corp',
      'SAN dns:vpn.example.com',
      'SAN ip:10.0.0.1',
      'a CA certificate (basicConstraints cA)',
    ]);
    expect(applySubjectTemplate(template({ csrExtras: 'refuse' }), vouched, greedy)).toEqual({
      ok: false,
      reason:
        'the request asks for what the profile does not give: subject O=Evil Corp; SAN dns:vpn.example.com; ' +
        'SAN ip:10.0.0.1; a CA certificate (basicConstraints cA)',
    });
  });

  it('gives nobody a certificate under a name they chose unless the profile says requester-chosen', () => {
    const selfNamed = requesterChosenIdentity('laptop-1') as VerifiedIdentity;
    expect(applySubjectTemplate(template(), selfNamed, csr())).toMatchObject({ ok: false });
    const allowed = applySubjectTemplate(template({ requesterChosenCommonName: true }), selfNamed, csr());
    // Only the CN is theirs: no e-mail (nobody vouched for one), O still from the template.
    expect(allowed.ok && allowed.certificate).toEqual({
      subject: [
        ['CN', 'laptop-1'],
        ['O', 'Example Corp'],
      ],
      subjectAltNames: { dns: [], email: [], uri: ['urn:device:laptop-1'], ip: [] },
    });
  });

  it('leaves out attributes whose value nobody vouched for, and refuses an empty certificate', () => {
    const bare: VerifiedIdentity = { deviceId: 'x', vouchedBy: 'jamf', attributes: { id: 'x' } };
    const t = template({
      subject: [['OU', '{{device.name}}']],
      subjectAltNames: { dns: [], email: [], uri: [] },
    });
    expect(applySubjectTemplate(t, bare, csr({ subjectAttributes: [] }))).toEqual({
      ok: false,
      reason: 'the subject template yields neither a subject nor a SAN for this device',
    });
  });

  it('names unknown placeholders, lists in the subject and unknown attribute types when the config loads', () => {
    expect(
      templateProblems({
        subject: [
          ['CN', '{{device.nope}}'],
          ['XX', 'a'],
          ['OU', '{{device.email}}'],
          ['O', '{{device.id}'],
        ],
        subjectAltNames: { dns: ['{{device.dns}}'], email: [], uri: [] },
      }),
    ).toEqual([
      expect.stringMatching(/^subject\.0: unknown placeholder device\.nope/),
      'subject.1: unknown attribute type XX',
      'subject.2: device.email is a list; lists belong in subjectAltNames',
      'subject.3: malformed placeholder (write {{device.<attribute>}})',
    ]);
  });
});

describe('device ids', () => {
  it('refuses what would break a workflow id or a URL', () => {
    expect(deviceIdProblem('laptop-001')).toBeUndefined();
    expect(deviceIdProblem('C02X Y')).toBeUndefined();
    expect(deviceIdProblem('')).toBe('no device id');
    expect(deviceIdProblem('a/b')).toMatch(/slash/);
    expect(deviceIdProblem('a\u0000b')).toMatch(/control/);
    expect(deviceIdProblem(' padded')).toMatch(/white space/);
    expect(deviceIdProblem('x'.repeat(129))).toMatch(/longer than 128/);
  });
});

describe('admission rules', () => {
  const rules = { takeover: 'approval', readmission: 'operator' } as const;
  const selfNamed = requesterChosenIdentity('laptop-1') as VerifiedIdentity;
  const clear = { holdsValidCertificate: false };
  const holds = { holdsValidCertificate: true };
  const blocked = {
    holdsValidCertificate: false,
    blocked: { at: '2026-12-01T00:00:00Z', reason: 'revoked (keyCompromise)' },
  };

  it('admits a first enrollment, a vouched one and a renewal', () => {
    expect(decideAdmission(selfNamed, clear, rules, false)).toEqual({
      decision: 'admitted',
      readmitted: false,
    });
    expect(decideAdmission(vouched, holds, rules, false)).toEqual({
      decision: 'admitted',
      readmitted: false,
    });
    expect(decideAdmission(selfNamed, holds, rules, true)).toEqual({
      decision: 'admitted',
      readmitted: false,
    });
  });

  it('never lets an unvouched request silently replace a valid certificate: approval, or refusal', () => {
    expect(decideAdmission(selfNamed, holds, rules, false)).toMatchObject({ decision: 'awaiting-approval' });
    expect(decideAdmission(selfNamed, holds, { ...rules, takeover: 'refuse' }, false)).toMatchObject({
      decision: 'refused',
      reason: expect.stringMatching(/already holds a valid certificate/),
    });
  });

  it('keeps a revoked device out until readmitted, or until its MDM vouches where the profile allows', () => {
    expect(decideAdmission(vouched, blocked, rules, false)).toMatchObject({
      decision: 'refused',
      reason: expect.stringMatching(/an operator must readmit it/),
    });
    expect(decideAdmission(vouched, blocked, { ...rules, readmission: 'mdm-vouched' }, false)).toEqual({
      decision: 'admitted',
      readmitted: true,
    });
    expect(
      decideAdmission(selfNamed, blocked, { ...rules, readmission: 'mdm-vouched' }, false),
    ).toMatchObject({
      decision: 'refused',
    });
  });
});
