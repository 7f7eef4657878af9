import { describe, expect, it } from 'vitest';
import { PathError, resolvePath } from '../../../src/system/paths.js';

const user = { name: 'user', home: '/home/user' };

describe('resolvePath', () => {
  it('keeps absolute paths, cleaned', () => {
    expect(resolvePath('/tmp/a/../b/', user)).toBe('/tmp/b');
    expect(resolvePath('/', user)).toBe('/');
  });
  it('resolves relative paths against the home, not the workdir', () => {
    expect(resolvePath('docs/a.txt', user, '/work')).toBe('/home/user/docs/a.txt');
    expect(resolvePath('../x', user)).toBe('/home/x');
  });
  it('expands ~ and ~/', () => {
    expect(resolvePath('~', user)).toBe('/home/user');
    expect(resolvePath('~/a', user)).toBe('/home/user/a');
  });
  it('uses the default workdir only for an empty path', () => {
    expect(resolvePath('', user, '/work')).toBe('/work');
    expect(resolvePath('', user)).toBe('/home/user');
  });
  it('refuses ~other and NUL bytes', () => {
    expect(() => resolvePath('~root/x', user)).toThrow(PathError);
    expect(() => resolvePath('/a\0b', user)).toThrow(PathError);
  });
});
