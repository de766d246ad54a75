import { expect, it } from 'vitest';
import { SEMI_SPACE_FLAG, withDefaultV8Flags } from '../../src/runtime/v8-flags.js';

it('adds the semi-space default when nothing sets it', () => {
  expect(withDefaultV8Flags(['--enable-source-maps'], '')).toEqual([
    '--enable-source-maps',
    SEMI_SPACE_FLAG,
  ]);
});

it('leaves an explicit flag or NODE_OPTIONS alone', () => {
  expect(withDefaultV8Flags(['--max-semi-space-size=16'], '')).toEqual([
    '--max-semi-space-size=16',
  ]);
  expect(withDefaultV8Flags([], '--max-semi-space-size=1 --trace-gc')).toEqual([]);
});
