/**
 * The names a CA rotation gives its generations, and the operator routes' refusals of bad input
 * (in-process: a refused request never reaches Temporal, so the app is built without it).
 */
import { describe, expect, it } from 'vitest';
import {
  baseKeyLabel,
  generationKeyLabel,
  isGenerationOf,
} from '../../activities/ca/local-hsm/generations.js';
import { crlUrl } from '../../activities/ca/local-hsm/index.js';
import { offlineOperatorApp } from '../support/operator-app.js';

describe('CA generation labels', () => {
  it('generation 1 is the configured label; later ones live beside it', () => {
    expect(generationKeyLabel('issuing-ca/devices', 1)).toBe('issuing-ca/devices');
    expect(generationKeyLabel('issuing-ca/devices', 3)).toBe('issuing-ca/devices/g3');
    expect(baseKeyLabel('issuing-ca/devices/g3')).toBe('issuing-ca/devices');
    expect(baseKeyLabel('issuing-ca/devices')).toBe('issuing-ca/devices');
  });

  it('a CA owns its generations and nothing else (a longer label or another CA is not its own)', () => {
    expect(isGenerationOf('issuing-ca/devices', 'issuing-ca/devices')).toBe(true);
    expect(isGenerationOf('issuing-ca/devices', 'issuing-ca/devices/g2')).toBe(true);
    expect(isGenerationOf('issuing-ca/devices', 'issuing-ca/devices-2/g2')).toBe(false);
    expect(isGenerationOf('issuing-ca/devices', 'issuing-ca/devices/g2/g3')).toBe(false);
    expect(isGenerationOf('issuing-ca/devices', 'issuing-ca/devices/g0')).toBe(false);
    expect(isGenerationOf('issuing-ca/a.b', 'issuing-ca/aXb/g2')).toBe(false);
  });

  it('each generation names its own CRL; generation 1 keeps the URL issued before rotation existed', () => {
    expect(crlUrl('https://pki.example', 'devices', 1)).toBe('https://pki.example/crl/devices.crl');
    expect(crlUrl('https://pki.example', 'devices', 2)).toBe('https://pki.example/crl/devices/2.crl');
  });
});

describe('POST /operator/cas/:profile/rotation refuses bad input', () => {
  const TOKEN = 'rotation-unit-token';
  const app = offlineOperatorApp(TOKEN);
  const post = (profile: string, body: string) =>
    app.request(`/operator/cas/${profile}/rotation`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body,
    });

  it.each([
    ['an unknown profile', 'nope', '{}', 404, /unknown profile nope/],
    ['a promotion time that is not a date-time', 'devices', '{"promoteAt":"soon"}', 400, /promoteAt/],
    ['a negative retention', 'devices', '{"retentionSeconds":-1}', 400, /retentionSeconds/],
    ['an unknown field', 'devices', '{"keyLabel":"mine"}', 400, /keyLabel/],
    ['not JSON', 'devices', '{', 400, /JSON/i],
  ])('%s: %i with the reason', async (_what, profile, body, status, reason) => {
    const response = await post(profile, body);
    expect(response.status).toBe(status);
    expect(((await response.json()) as { error: string }).error).toMatch(reason);
  });
});
