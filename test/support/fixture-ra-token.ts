import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { HsmToken } from '../../hsm/token.js';
import type { KeyTransportDecrypter, Signer } from '../../pki/keys.js';
import { createThrowawayToken } from './throwaway-token.js';

export const SCEP_FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'scep');
export const scepFixture = (name: string): Buffer => readFileSync(join(SCEP_FIXTURES, name));
export const scepFixturePath = (name: string): string => join(SCEP_FIXTURES, name);

export interface FixtureRaToken {
  /** Scratch directory (the token lives under it); removed by close(). */
  dir: string;
  decrypter: KeyTransportDecrypter;
  signer: Signer;
  close(): Promise<void>;
}

/**
 * A fresh SoftHSM token holding the fixture RA key (test/fixtures/scep/ra.pk8), as scep-codec.test.ts
 * does: the decoder's key transport really goes through PKCS#11.
 */
export async function openFixtureRaToken(label: string): Promise<FixtureRaToken> {
  const { dir, config } = await createThrowawayToken(label);
  execFileSync(
    'softhsm2-util',
    ['--import', scepFixturePath('ra.pk8'), '--token', label, '--label', 'ra', '--id', '01', '--pin', '1234'],
    { stdio: 'ignore' },
  );
  const token = await HsmToken.open(config);
  return {
    dir,
    decrypter: await token.decrypter('ra'),
    signer: await token.signer('ra'),
    async close() {
      await token.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
