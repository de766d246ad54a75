import { describe, expect, it } from 'vitest';
import { KeyRing } from '../../src/core/keyring.js';

const ring = new KeyRing([
  { user: 'alice', key: 'alice-key-0123456789' },
  { user: 'bob', key: 'bob-key-0123456789ab' },
]);

describe('KeyRing', () => {
  it('resolves each configured key to its user', () => {
    expect(ring.user('alice-key-0123456789')).toEqual({ user: 'alice' });
    expect(ring.user('bob-key-0123456789ab')).toEqual({ user: 'bob' });
  });

  it.each([
    ['empty', ''],
    ['a prefix', 'alice-key-012345678'],
    ['one character longer', 'alice-key-01234567890'],
    ['the key repeated', 'alice-key-0123456789alice-key-0123456789'],
    ['one character off', 'alice-key-0123456788'],
  ])('refuses %s', (_what, key) => {
    expect(ring.user(key)).toBeNull();
  });
});
