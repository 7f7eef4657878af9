import { describe, expect, it } from 'vitest';
import { permissionString } from '../../../src/system/entry.js';

describe('permissionString (Go FileMode.String)', () => {
  it('formats files, directories and links', () => {
    expect(permissionString(0o100644)).toBe('-rw-r--r--');
    expect(permissionString(0o040755)).toBe('drwxr-xr-x');
    expect(permissionString(0o120777)).toBe('Lrwxrwxrwx');
  });
  it('shows sticky, setuid and device bits as Go does', () => {
    expect(permissionString(0o041777)).toBe('dtrwxrwxrwx');
    expect(permissionString(0o104755)).toBe('urwxr-xr-x');
    expect(permissionString(0o020666)).toBe('Dcrw-rw-rw-');
    expect(permissionString(0o010644)).toBe('prw-r--r--');
    expect(permissionString(0o140755)).toBe('Srwxr-xr-x');
  });
});
