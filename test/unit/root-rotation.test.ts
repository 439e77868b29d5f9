/**
 * The root rotation ceremony (hsm/root-rotation.ts), judged by `openssl verify`: a device that
 * trusts only the old root accepts a certificate issued after the rotation, a device that trusts
 * only the new root accepts one issued before, and in each direction it is the cross-certificate
 * that makes the path: without it OpenSSL refuses. A throwaway token: the rotation adds a root.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPkiConfig, PROJECT_ROOT } from '../../config/load.js';
import type { PkiConfig } from '../../config/profile-types.js';
import { createIssuingCaGeneration, ensurePkiHierarchy } from '../../hsm/provision.js';
import { crossCertificateLabel, nextRootLabel, rotateRoot } from '../../hsm/root-rotation.js';
import type { HsmToken } from '../../hsm/token.js';
import { fromPem, toPem } from '../../pki/pem.js';
import { buildCertificate, certificateInfo } from '../../pki/x509/certificate.js';
import { encodeName } from '../../pki/x509/name.js';
import { openssl } from '../support/openssl.js';
import { openThrowawayToken } from '../support/throwaway-token.js';

const ISSUING = 'issuing-ca/devices';
let throwaway: Awaited<ReturnType<typeof openThrowawayToken>>;
let token: HsmToken;
let config: PkiConfig;
let work: string;
const pems = new Map<string, string>();

/** A leaf the issuing CA signs (what SCEP issues), for a device key made here. */
async function issueLeaf(cn: string): Promise<string> {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = await buildCertificate({
    serialNumber: Uint8Array.from([1, ...Buffer.from(cn)].slice(0, 16)),
    subject: encodeName([['CN', cn]]),
    subjectPublicKeyInfo: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' })),
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    issuer: {
      kind: 'ca',
      certificate: (await token.certificate(ISSUING))!,
      signer: await token.signer(ISSUING),
    },
    extensions: { keyUsages: ['digitalSignature'] },
  });
  return toPem(der);
}

const file = (name: string, pem: string) => {
  const path = join(work, name);
  writeFileSync(path, pem);
  return path;
};
const pemOf = async (label: string) => toPem((await token.certificate(label))!);

/** openssl verify of `leaf` with exactly these trust anchors and untrusted intermediates. */
const verify = async (leaf: string, trusted: string[], untrusted: string[]) =>
  openssl([
    'verify',
    '-CAfile',
    file(`trust-${Math.random()}.pem`, trusted.join('')),
    ...(untrusted.length > 0
      ? ['-untrusted', file(`untrusted-${Math.random()}.pem`, untrusted.join(''))]
      : []),
    file(`leaf-${Math.random()}.pem`, leaf),
  ]);

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'root-rotation-'));
  throwaway = await openThrowawayToken('root-rotation');
  token = throwaway.token;
  const full = loadPkiConfig({ PKI_CONFIG: join(PROJECT_ROOT, 'test', 'support', 'test-pki.json') });
  config = { ...full, profiles: full.profiles.filter((p) => p.name === 'devices' || p.name === 'operators') };
  await ensurePkiHierarchy(throwaway.tokens, config);
  // A CA rotation already gave `devices` a second generation: the new root must certify it too.
  await createIssuingCaGeneration(throwaway.tokens, config, 'devices', 'issuing-ca/devices/g2');
});
afterAll(async () => {
  await throwaway?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('root rotation ceremony', () => {
  const newRoot = nextRootLabel('root-ca');

  it('a dry run lists the steps and writes nothing', async () => {
    const plan = await rotateRoot(throwaway.tokens, config, { dryRun: true });
    expect(plan.newLabel).toBe('root-ca/2');
    expect(plan.steps.map((s) => [s.kind, s.label, s.outcome])).toEqual([
      ['key', 'root-ca/2', 'planned'],
      ['root-certificate', 'root-ca/2', 'planned'],
      ['cross-certificate', 'root-ca/2/signed-by/root-ca', 'planned'],
      ['cross-certificate', 'root-ca/signed-by/root-ca/2', 'planned'],
      ['issuing-certificate', 'issuing-ca/devices/signed-by/root-ca/2', 'planned'],
      ['issuing-certificate', 'issuing-ca/devices/g2/signed-by/root-ca/2', 'planned'],
      ['issuing-certificate', 'issuing-ca/operators/signed-by/root-ca/2', 'planned'],
    ]);
    expect(await token.publicKey(newRoot)).toBeUndefined();
    expect(await token.certificate(newRoot)).toBeUndefined();
  });

  it('creates the new root and the cross-certificates, with CA extensions and nested validity; a second run keeps them', async () => {
    pems.set('leaf-before', await issueLeaf('device-before-rotation'));
    pems.set('old-root', await pemOf('root-ca'));
    pems.set('old-issuing', await pemOf(ISSUING));

    const result = await rotateRoot(throwaway.tokens, config);
    expect(result.steps.every((s) => s.outcome === 'created')).toBe(true);
    pems.set('new-root', await pemOf(newRoot));
    pems.set('new-by-old', await pemOf(crossCertificateLabel(newRoot, 'root-ca')));
    pems.set('old-by-new', await pemOf(crossCertificateLabel('root-ca', newRoot)));
    pems.set('new-issuing', await pemOf(crossCertificateLabel(ISSUING, newRoot)));
    pems.set('leaf-after', await issueLeaf('device-after-rotation'));

    const text = async (name: string) =>
      (await openssl(['x509', '-in', file(`${name}.pem`, pems.get(name)!), '-noout', '-text'])).output;
    const ski = (t: string) => /Subject Key Identifier:\s*\n\s*([0-9A-F:]+)/.exec(t)?.[1];
    const aki = (t: string) => /Authority Key Identifier:\s*\n\s*(?:keyid:)?([0-9A-F:]+)/.exec(t)?.[1];
    const [oldRoot, newRootText, newByOld, oldByNew, newIssuing, oldIssuing] = await Promise.all(
      ['old-root', 'new-root', 'new-by-old', 'old-by-new', 'new-issuing', 'old-issuing'].map(text),
    );
    expect(newRootText).toMatch(/Subject: CN ?= ?Device PKI Test Root CA G2/);
    for (const cross of [newByOld!, oldByNew!]) {
      expect(cross).toMatch(/CA:TRUE/);
      expect(cross).toMatch(/Certificate Sign, CRL Sign/);
    }
    // Each cross-certificate carries its subject root's key id and its issuer root's as authority.
    expect(ski(newByOld!)).toBe(ski(newRootText!));
    expect(aki(newByOld!)).toBe(ski(oldRoot!));
    expect(ski(oldByNew!)).toBe(ski(oldRoot!));
    expect(aki(oldByNew!)).toBe(ski(newRootText!));
    expect(ski(newIssuing!)).toBe(ski(oldIssuing!));
    expect(aki(newIssuing!)).toBe(ski(newRootText!));
    expect(newIssuing).toMatch(/CA:TRUE, pathlen:0/);
    const within = (inner: string, outer: string) => {
      const i = certificateInfo(fromPem(pems.get(inner)!));
      const o = certificateInfo(fromPem(pems.get(outer)!));
      expect(i.notAfter.getTime()).toBeLessThanOrEqual(o.notAfter.getTime());
    };
    within('new-by-old', 'old-root');
    within('old-by-new', 'new-root');
    within('new-issuing', 'new-root');

    const again = await rotateRoot(throwaway.tokens, config);
    expect(again.steps.every((s) => s.outcome === 'exists')).toBe(true);
    expect(await pemOf(crossCertificateLabel(newRoot, 'root-ca'))).toBe(pems.get('new-by-old'));
  });

  it('a device holding only the OLD root verifies a certificate issued after the rotation through the cross-certificate', async () => {
    await expectVerifiesOnlyThroughCross('leaf-after', 'old-root', 'new-issuing', 'new-by-old');
  });

  it('a device holding only the NEW root verifies a certificate issued before the rotation through the cross-certificate', async () => {
    await expectVerifiesOnlyThroughCross('leaf-before', 'new-root', 'old-issuing', 'old-by-new');
  });

  it('a device holding only the new root verifies a new leaf through the new-root issuing certificate, no cross-certificate needed', async () => {
    const ok = await verify(pems.get('leaf-after')!, [pems.get('new-root')!], [pems.get('new-issuing')!]);
    expect(ok.code, ok.output).toBe(0);
  });
});

/** OpenSSL verifies the leaf against the trusted root with the cross-certificate, and not without it. */
async function expectVerifiesOnlyThroughCross(leaf: string, trusted: string, issuing: string, cross: string) {
  const ok = await verify(pems.get(leaf)!, [pems.get(trusted)!], [pems.get(issuing)!, pems.get(cross)!]);
  expect(ok.code, ok.output).toBe(0);
  expect(ok.output).toMatch(/: OK/);
  const without = await verify(pems.get(leaf)!, [pems.get(trusted)!], [pems.get(issuing)!]);
  expect(without.code).not.toBe(0);
  expect(without.output).toMatch(/unable to get (local )?issuer certificate/);
}
