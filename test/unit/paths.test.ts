import { describe, expect, it } from 'vitest';
import { CallFSError } from '../../src/core/errors.js';
import { isWithin, normalise, parentOf, parseNamespacePath } from '../../src/core/paths.js';

const rejects = (raw: string) => {
  try {
    parseNamespacePath(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(CallFSError);
    return (err as CallFSError).code;
  }
  return 'accepted';
};

describe('parseNamespacePath', () => {
  it.each([
    ['/', '/', true],
    ['', '/', true],
    ['/a/b.txt', '/a/b.txt', false],
    ['/a/b/', '/a/b', true],
    ['/a%20b/c+d@e.txt', '/a b/c+d@e.txt', false],
    ['/%C3%A9t%C3%A9/.hidden', '/été/.hidden', false],
    ['/a..b/...', '/a..b/...', false],
    ['/100%25/50%25%20off', '/100%/50% off', false],
  ])('accepts %s', (raw, path, directory) => {
    expect(parseNamespacePath(raw)).toEqual({ path, directory });
  });

  it.each([
    '/../etc/passwd',
    '/a/../../b',
    '/a/%2e%2e/b',
    '/a/%2E%2E/b',
    '/a/%252e%252e/b',
    '/a%2fb',
    '/a%2Fb',
    '/a%5cb',
    '/a\\b',
    '/a%00b',
    '/a%01b',
    '/a%7fb',
    '/a%c2%85b',
    '/a%EF%BC%8Fb',
    '/a%E2%88%95b',
    '/a%c0%afb',
    '/a%e0%80%afb',
    '/a%',
    '/a%zz',
    '/./a',
    '/a/./b',
    '/a//b',
    `/${'x'.repeat(256)}`,
    `/${'a/'.repeat(2100)}b`,
    '/.callfs/api-key',
    '/.callfs',
  ])('rejects %s with INVALID_PATH', (raw) => {
    expect(rejects(raw)).toBe('INVALID_PATH');
  });

  it('accepts a 255-byte segment and a 4096-byte path', () => {
    expect(parseNamespacePath(`/${'x'.repeat(255)}`).path).toHaveLength(256);
    const long = '/' + Array.from({ length: 16 }, () => 'y'.repeat(255)).join('/');
    expect(Buffer.byteLength(long)).toBe(4096);
    expect(parseNamespacePath(long).path).toBe(long);
  });
});

describe('path helpers', () => {
  it('parentOf', () => {
    expect(parentOf('/a/b/c')).toBe('/a/b');
    expect(parentOf('/a')).toBe('/');
    expect(parentOf('/')).toBe('/');
  });
  it('isWithin', () => {
    expect(isWithin('/a/b', '/a')).toBe(true);
    expect(isWithin('/a', '/a')).toBe(true);
    expect(isWithin('/ab', '/a')).toBe(false);
    expect(isWithin('/x', '/')).toBe(true);
  });
  it('normalise refuses lone surrogates (JSON "\\ud800"), which have no UTF-8 form', () => {
    for (const bad of ['/a\ud800', '/\udfff.txt', '/x/\ud83d']) {
      expect(() => normalise(bad)).toThrow(/lone surrogate/);
    }
    expect(normalise('/\ud83d\ude00.txt').path).toBe('/😀.txt');
  });

  it('normalise refuses dot segments in decoded destinations', () => {
    expect(() => normalise('/a/../b')).toThrow(CallFSError);
    expect(normalise('/a/b/').path).toBe('/a/b');
  });
});
