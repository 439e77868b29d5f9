/**
 * Root rotation ceremony (`npm run ca:root-rotation`): a new root key and self-signed certificate
 * beside the current root, and the cross-certificates that let each generation vouch for the other,
 * so a device that trusts only one of the two roots still builds a path to certificates issued
 * under the other:
 *   - `<new>/signed-by/<old>`: the new root's key and subject, signed by the old root. A device that
 *     trusts only the old root reaches the new one through it.
 *   - `<old>/signed-by/<new>`: the old root's key and subject, signed by the new root. A device that
 *     trusts only the new root keeps accepting everything the old root certified.
 *   - `<issuing>/signed-by/<new>`: each issuing CA's key and subject, certified by the new root. The
 *     issuing certificates the old root signed stay valid; this one lets a new-root-only device
 *     build the short path (leaf, issuing, new root) without any cross-certificate.
 * Everything lives in the root token (the CA token when there is no root token of its own), with
 * copies of the public certificates in the RA token (the API serves chains from there). Idempotent:
 * a key or certificate that exists is kept, so an interrupted ceremony is finished by running it again.
 */

import { isGenerationOf } from '../activities/ca/local-hsm/generations.js';
import type { PkiConfig } from '../config/profile-types.js';
import { buildCertificate, certificateInfo, rawSubject } from '../pki/x509/certificate.js';
import { encodeName } from '../pki/x509/name.js';
import {
  BACKDATE_MS,
  capped,
  DAY_MS,
  ensureCertificate,
  ensureCopy,
  ensureKeyPair,
  hashFor,
  issue,
  issuingCertificateLabel,
  newSerial,
} from './provision.js';
import type { TokenSet } from './token-set.js';

/** Where a certificate of `subjectLabel`'s key signed by `issuerLabel`'s key is kept. */
export const crossCertificateLabel = (subjectLabel: string, issuerLabel: string) =>
  `${subjectLabel}/signed-by/${issuerLabel}`;

/** `root-ca` → `root-ca/2`, `root-ca/2` → `root-ca/3`: the label of the next root generation. */
export function nextRootLabel(current: string): string {
  const generation = /^(.*)\/(\d+)$/.exec(current);
  return generation ? `${generation[1]}/${Number(generation[2]) + 1}` : `${current}/2`;
}

/**
 * The new root's subject: the configured one with the generation appended to its CN. A distinct
 * name, because two roots under one name make path building depend on key identifiers alone, which
 * some validators (and operators reading a chain) get wrong.
 */
export function nextRootSubject(config: PkiConfig, newLabel: string): Array<[string, string]> {
  const generation = /\/(\d+)$/.exec(newLabel)?.[1] ?? '2';
  return config.rootCa.subject.map(([type, value]) =>
    type === 'CN'
      ? ([type, `${value.replace(/ G\d+$/, '')} G${generation}`] as [string, string])
      : [type, value],
  );
}

export interface RotationStep {
  /** What the step makes: a key pair, or a certificate under `label`. */
  kind: 'key' | 'root-certificate' | 'cross-certificate' | 'issuing-certificate';
  label: string;
  /** `exists`: found from an earlier run and kept. `planned`: a dry run, nothing written. */
  outcome: 'created' | 'exists' | 'planned';
  description: string;
  /** The certificate's DER (absent for keys and planned steps). */
  certificate?: Uint8Array;
}

export interface RotationResult {
  oldLabel: string;
  newLabel: string;
  steps: RotationStep[];
}

/**
 * The labels of the issuing CA keys a root certifies: every generation of each local-hsm profile's
 * CA the CA token still holds and may sign with (issuing-CA rotation: `<keyLabel>/g<n>`; a retired
 * generation has lost CKA_SIGN or is gone).
 */
async function issuingCaLabels(tokens: TokenSet, config: PkiConfig): Promise<string[]> {
  const keys = await tokens.get('ca').listKeys();
  const labels: string[] = [];
  for (const profile of config.profiles) {
    if (profile.ca.type !== 'local-hsm') continue;
    const base = issuingCertificateLabel(profile);
    labels.push(base);
    for (const key of keys)
      if (key.label !== base && isGenerationOf(base, key.label) && key.usages.includes('sign'))
        labels.push(key.label);
  }
  return labels;
}

export async function rotateRoot(
  tokens: TokenSet,
  config: PkiConfig,
  opts: { newLabel?: string; dryRun?: boolean; now?: Date } = {},
): Promise<RotationResult> {
  const now = opts.now ?? new Date();
  const notBefore = new Date(now.getTime() - BACKDATE_MS);
  const root = tokens.get('root');
  const oldLabel = config.rootCa.keyLabel;
  const newLabel = opts.newLabel ?? nextRootLabel(oldLabel);
  if (newLabel === oldLabel)
    throw new Error(`the new root label must differ from the current one (${oldLabel})`);
  const oldCert = await root.certificate(oldLabel);
  if (!oldCert)
    throw new Error(
      `HSM token "${root.tokenLabel}" has no root certificate "${oldLabel}"; run \`npm run hsm:init\``,
    );
  const issuing = await issuingCaLabels(tokens, config);
  const newSubject = nextRootSubject(config, newLabel);

  if (opts.dryRun) {
    const has = async (label: string) => (await root.certificate(label)) !== undefined;
    const plan = async (
      kind: RotationStep['kind'],
      label: string,
      description: string,
    ): Promise<RotationStep> => ({
      kind,
      label,
      outcome: (await has(label)) || (kind === 'key' && (await root.publicKey(label))) ? 'exists' : 'planned',
      description,
    });
    return {
      oldLabel,
      newLabel,
      steps: [
        await plan('key', newLabel, `${config.rootCa.keyAlgorithm} key pair in token "${root.tokenLabel}"`),
        await plan(
          'root-certificate',
          newLabel,
          `self-signed root ${newSubject.map((r) => r.join('=')).join(', ')}`,
        ),
        await plan(
          'cross-certificate',
          crossCertificateLabel(newLabel, oldLabel),
          'new root certified by the old root',
        ),
        await plan(
          'cross-certificate',
          crossCertificateLabel(oldLabel, newLabel),
          'old root certified by the new root',
        ),
        ...(await Promise.all(
          issuing.map((label) =>
            plan(
              'issuing-certificate',
              crossCertificateLabel(label, newLabel),
              `issuing CA "${label}" certified by the new root`,
            ),
          ),
        )),
      ],
    };
  }

  const steps: RotationStep[] = [];
  const existedKey = (await root.publicKey(newLabel)) !== undefined;
  const newSpki = await ensureKeyPair(root, newLabel, config.rootCa.keyAlgorithm, 'signing');
  steps.push({
    kind: 'key',
    label: newLabel,
    outcome: existedKey ? 'exists' : 'created',
    description: `${config.rootCa.keyAlgorithm} key pair in token "${root.tokenLabel}"`,
  });

  /** Builds and stores a certificate unless the label holds one for `spki` already. */
  const certify = async (
    kind: RotationStep['kind'],
    label: string,
    spki: Uint8Array,
    description: string,
    build: () => Promise<Uint8Array>,
  ): Promise<Uint8Array> => {
    const existed = (await root.certificate(label)) !== undefined;
    const der = await ensureCertificate(root, label, spki, build);
    if (tokens.has('ra')) await ensureCopy(tokens.get('ra'), label, der);
    steps.push({ kind, label, outcome: existed ? 'exists' : 'created', description, certificate: der });
    return der;
  };

  const newCert = await certify('root-certificate', newLabel, newSpki, 'self-signed new root', async () => {
    const signer = await root.signer(newLabel);
    return buildCertificate({
      serialNumber: newSerial(),
      subject: encodeName(newSubject),
      subjectPublicKeyInfo: newSpki,
      notBefore,
      notAfter: new Date(now.getTime() + config.rootCa.validityDays * DAY_MS),
      issuer: { kind: 'self', signer },
      hash: hashFor(signer),
      extensions: { ca: {}, keyUsages: ['keyCertSign', 'cRLSign'] },
    });
  });

  // One root certifies another CA's key and name (the subject's own certificate), no longer valid
  // than either: the subject's validity, capped by the issuer's (RFC 5280 6.1.3 checks both).
  const recertify = (
    kind: 'cross-certificate' | 'issuing-certificate',
    subject: { label: string; cert: Uint8Array },
    issuer: { label: string; cert: Uint8Array },
    what: string,
    extensions: Parameters<typeof issue>[3]['extensions'],
  ) => {
    const info = certificateInfo(subject.cert);
    return certify(
      kind,
      crossCertificateLabel(subject.label, issuer.label),
      info.subjectPublicKeyInfo,
      what,
      () =>
        issue(root, issuer.label, issuer.cert, {
          subject: rawSubject(subject.cert),
          subjectPublicKeyInfo: info.subjectPublicKeyInfo,
          notBefore,
          notAfter: capped(info.notAfter.getTime(), issuer.cert),
          extensions,
        }),
    );
  };
  const rootExtensions: Parameters<typeof recertify>[4] = { ca: {}, keyUsages: ['keyCertSign', 'cRLSign'] };
  const oldRoot = { label: oldLabel, cert: oldCert };
  const nextRoot = { label: newLabel, cert: newCert };
  await recertify(
    'cross-certificate',
    nextRoot,
    oldRoot,
    `"${newLabel}" certified by "${oldLabel}"`,
    rootExtensions,
  );
  await recertify(
    'cross-certificate',
    oldRoot,
    nextRoot,
    `"${oldLabel}" certified by "${newLabel}"`,
    rootExtensions,
  );

  const caToken = tokens.get('ca');
  for (const label of issuing) {
    const current = await caToken.certificate(label);
    if (!current) continue;
    // The same end as the old-root certificate: re-certifying must not extend the key's life.
    await recertify(
      'issuing-certificate',
      { label, cert: current },
      nextRoot,
      `issuing CA "${label}" certified by the new root`,
      { ca: { pathLength: 0 }, keyUsages: ['keyCertSign', 'cRLSign', 'digitalSignature'] },
    );
  }
  return { oldLabel, newLabel, steps };
}
