import { execFileSync } from 'node:child_process';
import { constants, createPublicKey, publicEncrypt, randomBytes, verify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureSoftHsmToken } from '../../hsm/softhsm.js';
import { type HsmConfig, HsmKeyNotFoundError, HsmToken } from '../../hsm/token.js';
import type { HashName, KeyAlgorithm } from '../../pki/keys.js';

const NODE_HASH: Record<HashName, string> = {
  'SHA-1': 'sha1',
  'SHA-256': 'sha256',
  'SHA-384': 'sha384',
  'SHA-512': 'sha512',
};

const publicKeyOf = (spki: Uint8Array) =>
  createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });

/**
 * Reads key attributes from a second process, as any other PKCS#11 application would see the token:
 * the assertion does not rely on the code under test to report its own key properties.
 */
function readAttributesElsewhere(config: HsmConfig, label: string) {
  const script = `
    const g = require('graphene-pk11');
    const mod = g.Module.load(process.env.LIB, 'softhsm');
    mod.initialize({ flags: 2 });
    const slots = mod.getSlots(true);
    let slot;
    for (let i = 0; i < slots.length; i++) if (slots.items(i).getToken().label === process.env.TOKEN) slot = slots.items(i);
    const session = slot.open(g.SessionFlag.SERIAL_SESSION);
    session.login(process.env.PIN);
    const out = {};
    for (const [name, cls] of [['private', g.ObjectClass.PRIVATE_KEY], ['secret', g.ObjectClass.SECRET_KEY], ['public', g.ObjectClass.PUBLIC_KEY]]) {
      const found = session.find({ class: cls, label: process.env.LABEL });
      if (found.length === 0) continue;
      const o = found.items(0);
      const attrs = {};
      for (const a of ['token', 'private', 'sensitive', 'extractable', 'alwaysSensitive', 'neverExtractable', 'sign', 'decrypt', 'unwrap', 'derive', 'encrypt', 'wrap', 'id']) {
        try { const v = o.getAttribute(a); attrs[a] = Buffer.isBuffer(v) ? v.toString('hex') : v; } catch (e) { attrs[a] = 'error: ' + e.message; }
      }
      for (const a of ['privateExponent', 'value']) {
        try { o.getAttribute(a); attrs[a] = 'readable'; } catch (e) { attrs[a] = e.message; }
      }
      out[name] = attrs;
    }
    session.logout();
    mod.finalize();
    console.log(JSON.stringify(out));
  `;
  const stdout = execFileSync(process.execPath, ['-e', script], {
    cwd: process.cwd(),
    encoding: 'utf8',
    env: { ...process.env, LIB: config.library, TOKEN: config.tokenLabel, PIN: config.pin, LABEL: label },
  });
  return JSON.parse(stdout) as Record<'private' | 'secret' | 'public', Record<string, unknown> | undefined>;
}

describe('HsmToken on SoftHSM', () => {
  let dir: string;
  let config: HsmConfig;
  let token: HsmToken;
  const spkis = new Map<KeyAlgorithm, Uint8Array>();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hsm-test-'));
    config = {
      ...(await ensureSoftHsmToken({ dir, label: 'unit-test', pin: '1234', soPin: '5678' })),
      poolSize: 4,
    };
    token = await HsmToken.open(config);
    for (const alg of ['rsa-2048', 'ec-p256', 'ec-p384'] as const) {
      spkis.set(alg, (await token.generateKeyPair(alg, alg, alg.startsWith('rsa') ? 'ra' : 'signing')).spki);
    }
  });

  afterAll(async () => {
    await token?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ensureSoftHsmToken is idempotent', async () => {
    const again = await ensureSoftHsmToken({ dir, label: 'unit-test', pin: '1234', soPin: '5678' });
    expect(again.tokenLabel).toBe('unit-test');
    const slots = execFileSync('softhsm2-util', ['--show-slots'], { encoding: 'utf8' });
    expect(slots.match(/Label:\s+unit-test\s*$/gm)).toHaveLength(1);
  });

  it('generates private keys that are sensitive, non-extractable token objects sharing CKA_ID with the public key', () => {
    for (const alg of ['rsa-2048', 'ec-p256'] as const) {
      const attrs = readAttributesElsewhere(config, alg);
      expect(attrs.private).toMatchObject({
        token: true,
        private: true,
        sensitive: true,
        extractable: false,
        alwaysSensitive: true,
        neverExtractable: true,
        sign: true,
      });
      expect(attrs.private?.value).toMatch(/CKR_ATTRIBUTE_SENSITIVE|CKR_ATTRIBUTE_TYPE_INVALID/);
      expect(attrs.public?.token).toBe(true);
      expect(attrs.public?.id).toBe(attrs.private?.id);
    }
    // An RA key decrypts SCEP envelopes and signs replies; no key here wraps, unwraps or derives.
    const rsa = readAttributesElsewhere(config, 'rsa-2048').private;
    expect(rsa).toMatchObject({ decrypt: true, unwrap: false, derive: false });
    expect(rsa?.privateExponent).toMatch(/CKR_ATTRIBUTE_SENSITIVE/);
  });

  it('narrows an older key to its role: a CA key that could decrypt can afterwards only sign', async () => {
    // A key generated before key custody, with every usage on, as earlier releases made CA keys.
    await token.generateKeyPair('old-ca', 'rsa-2048', 'ra');
    expect(readAttributesElsewhere(config, 'old-ca').private).toMatchObject({ sign: true, decrypt: true });
    expect(await token.enforceKeyUsage('old-ca', 'signing')).toEqual(['decrypt', 'encrypt']);
    expect(readAttributesElsewhere(config, 'old-ca').private).toMatchObject({
      sign: true,
      decrypt: false,
      unwrap: false,
    });
    expect(await token.enforceKeyUsage('old-ca', 'signing')).toEqual([]);
    // It still signs.
    expect((await token.signer('old-ca')).keyAlgorithm).toBe('rsa-2048');
  });

  it('returns the SPKI of stored public keys, and undefined for unknown labels', async () => {
    for (const [alg, spki] of spkis) {
      expect(Buffer.from((await token.publicKey(alg))!)).toEqual(Buffer.from(spki));
      expect(publicKeyOf(spki).asymmetricKeyType).toBe(alg.startsWith('rsa') ? 'rsa' : 'ec');
    }
    expect(publicKeyOf(spkis.get('rsa-2048')!).asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(publicKeyOf(spkis.get('ec-p384')!).asymmetricKeyDetails?.namedCurve).toBe('secp384r1');
    expect(await token.publicKey('no-such-key')).toBeUndefined();
  });

  it('refuses to generate a second key pair under an existing label', async () => {
    await expect(token.generateKeyPair('rsa-2048', 'rsa-2048', 'ra')).rejects.toThrow(
      /already has a private key/,
    );
  });

  it.each([
    ['rsa-2048', 'SHA-1'],
    ['rsa-2048', 'SHA-256'],
    ['rsa-2048', 'SHA-384'],
    ['rsa-2048', 'SHA-512'],
    ['ec-p256', 'SHA-256'],
    ['ec-p256', 'SHA-1'],
    ['ec-p384', 'SHA-384'],
    ['ec-p384', 'SHA-512'],
  ] as const)('%s signatures with %s verify with node:crypto', async (alg, hash) => {
    const signer = await token.signer(alg);
    expect(signer.keyAlgorithm).toBe(alg);
    const data = randomBytes(300);
    const signature = await signer.sign(data, hash);
    // node:crypto expects DER ECDSA-Sig-Value by default, so this also checks the r||s encoding.
    expect(verify(NODE_HASH[hash], data, publicKeyOf(spkis.get(alg)!), signature)).toBe(true);
    expect(verify(NODE_HASH[hash], Buffer.from('other'), publicKeyOf(spkis.get(alg)!), signature)).toBe(
      false,
    );
  });

  it('decrypts inside the token what node:crypto encrypted with RSA PKCS#1 v1.5', async () => {
    const decrypter = await token.decrypter('rsa-2048');
    for (const secret of [randomBytes(32), randomBytes(16), Buffer.from([0, 0, 1])]) {
      const encrypted = publicEncrypt(
        { key: publicKeyOf(spkis.get('rsa-2048')!), padding: constants.RSA_PKCS1_PADDING },
        secret,
      );
      expect(Buffer.from(await decrypter.decrypt(encrypted))).toEqual(secret);
    }
    await expect(decrypter.decrypt(randomBytes(256))).rejects.toThrow(/unit-test.*rsa-2048/);
    await expect(token.decrypter('ec-p256')).rejects.toThrow(/not RSA/);
  });

  it('names the token and the key when a key is missing', async () => {
    const error = await token.signer('missing-key').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HsmKeyNotFoundError);
    expect((error as Error).message).toBe('HSM token "unit-test" has no private key labelled "missing-key"');
    // A key generated after a failed lookup is found: misses are not cached.
    await token.generateKeyPair('missing-key', 'ec-p256', 'signing');
    expect((await token.signer('missing-key')).keyAlgorithm).toBe('ec-p256');
  });

  describe('sealer (AES-256-GCM in the token)', () => {
    beforeAll(async () => {
      await token.generateSecretKey('field-encryption');
    });

    it('stores a sensitive, non-extractable AES key', () => {
      expect(readAttributesElsewhere(config, 'field-encryption').secret).toMatchObject({
        token: true,
        sensitive: true,
        extractable: false,
        encrypt: true,
        decrypt: true,
      });
    });

    it('round-trips and lays out iv || ciphertext || tag', async () => {
      const sealer = await token.sealer('field-encryption');
      const aad = Buffer.from('enrollment-42');
      for (const plain of [Buffer.alloc(0), Buffer.from('CSR bytes'), randomBytes(5000)]) {
        const sealed = await sealer.seal(plain, aad);
        expect(sealed.length).toBe(12 + plain.length + 16);
        expect(Buffer.from(await sealer.open(sealed, aad))).toEqual(plain);
      }
      const a = await sealer.seal(Buffer.from('same'), aad);
      const b = await sealer.seal(Buffer.from('same'), aad);
      expect(Buffer.from(a)).not.toEqual(Buffer.from(b));
    });

    it('rejects tampering, a wrong AAD and truncated input', async () => {
      const sealer = await token.sealer('field-encryption');
      const aad = Buffer.from('row-1');
      const sealed = Buffer.from(await sealer.seal(Buffer.from('sensitive field'), aad));
      for (const index of [0, 11, 12, sealed.length - 17, sealed.length - 1]) {
        const tampered = Buffer.from(sealed);
        tampered[index]! ^= 0x01;
        await expect(sealer.open(tampered, aad)).rejects.toThrow(/field-encryption/);
      }
      await expect(sealer.open(sealed, Buffer.from('row-2'))).rejects.toThrow(/wrong AAD/);
      await expect(sealer.open(sealed.subarray(0, 20), aad)).rejects.toThrow(/too short/);
      // The session that saw a failed tag check is usable again.
      expect(Buffer.from(await sealer.open(sealed, aad)).toString()).toBe('sensitive field');
    });

    it('refuses a second secret key under the same label and reports a missing one', async () => {
      await expect(token.generateSecretKey('field-encryption')).rejects.toThrow(/already has a secret key/);
      await expect(token.sealer('nope')).rejects.toBeInstanceOf(HsmKeyNotFoundError);
    });
  });

  it('stores certificates as token objects, replacing one with the same label', async () => {
    const first = Buffer.from(
      execOpenSsl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']),
    );
    const second = Buffer.from(
      execOpenSsl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']),
    );
    expect(await token.certificate('a-cert')).toBeUndefined();
    await token.storeCertificate('a-cert', first);
    expect(Buffer.from((await token.certificate('a-cert'))!)).toEqual(first);
    await token.storeCertificate('a-cert', second);
    expect(Buffer.from((await token.certificate('a-cert'))!)).toEqual(second);
    await expect(token.storeCertificate('bad', Buffer.from('not a cert'))).rejects.toThrow(/X.509/);
  });

  it('runs 200 concurrent signatures on a pool of 4 sessions without blocking the event loop', async () => {
    const ec = await token.signer('ec-p256');
    const rsa = await token.signer('rsa-2048');
    const decrypter = await token.decrypter('rsa-2048');
    const secret = randomBytes(32);
    const encrypted = publicEncrypt(
      { key: publicKeyOf(spkis.get('rsa-2048')!), padding: constants.RSA_PKCS1_PADDING },
      secret,
    );
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const jobs = Array.from({ length: 200 }, async (_, i) => {
      const data = Buffer.from(`message ${i}`);
      if (i % 10 === 9) return Buffer.from(await decrypter.decrypt(encrypted)).equals(secret);
      const [signer, alg] = i % 2 === 0 ? ([ec, 'ec-p256'] as const) : ([rsa, 'rsa-2048'] as const);
      const signature = await signer.sign(data, 'SHA-256');
      return verify('sha256', data, publicKeyOf(spkis.get(alg)!), signature);
    });
    const results = await Promise.all(jobs);
    clearInterval(timer);
    expect(results.every(Boolean)).toBe(true);
    expect(ticks).toBeGreaterThan(0);
  });

  it('closes idempotently, refuses work afterwards, and keys persist for the next open', async () => {
    const signer = await token.signer('ec-p256');
    await token.close();
    await token.close();
    await expect(signer.sign(Buffer.from('x'), 'SHA-256')).rejects.toThrow(/closed/);

    await expect(HsmToken.open({ ...config, pin: '0000' })).rejects.toThrow(
      /login.*unit-test.*CKR_PIN_INCORRECT/,
    );
    await expect(HsmToken.open({ ...config, tokenLabel: 'absent' })).rejects.toThrow(
      /no PKCS#11 token labelled "absent".*"unit-test"/,
    );

    token = await HsmToken.open(config);
    const reopened = await token.signer('ec-p256');
    const signature = await reopened.sign(Buffer.from('persisted'), 'SHA-256');
    expect(verify('sha256', Buffer.from('persisted'), publicKeyOf(spkis.get('ec-p256')!), signature)).toBe(
      true,
    );
  });
});

function execOpenSsl(args: string[]): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'hsm-cert-'));
  try {
    return execFileSync(
      'openssl',
      [
        ...args,
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-subj',
        '/CN=test',
        '-days',
        '1',
        '-outform',
        'DER',
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
