import { execFileSync, spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { CaCertInstaller, pemProblem, type TrustStorePaths } from '../../../src/system/ca-certs.js';

function selfSigned(dir: string, name: string): string {
  const out = path.join(dir, `${name}.crt`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', path.join(dir, `${name}.key`), '-out', out, '-days', '1', '-subj', `/CN=${name}`], { stdio: 'pipe' });
  return readFileSync(out, 'utf8');
}

const silent = pino({ level: 'silent' });
const haveOpenssl = spawnSync('openssl', ['version']).status === 0;
if (!haveOpenssl) console.log('skipping CaCertInstaller tests: the openssl CLI, which makes their certificates, is missing');

describe.skipIf(!haveOpenssl)('CaCertInstaller', () => {
  let dir: string;
  let ca1: string;
  let ca2: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'sandboxd-ca-'));
    ca1 = selfSigned(dir, 'one');
    ca2 = selfSigned(dir, 'two');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Debian/Ubuntu and Alpine: the bundle in etc/ssl/certs, Alpine's etc/ssl/cert.pem a link to it. */
  const layout = (opts: { alpineLink?: boolean; bundle?: string } = {}): TrustStorePaths => {
    mkdirSync(path.join(dir, 'etc/ssl/certs'), { recursive: true });
    if (opts.bundle !== undefined) writeFileSync(path.join(dir, 'etc/ssl/certs/ca-certificates.crt'), opts.bundle, { mode: 0o644 });
    if (opts.alpineLink) symlinkSync('certs/ca-certificates.crt', path.join(dir, 'etc/ssl/cert.pem'));
    return {
      bundles: opts.alpineLink ? [path.join(dir, 'etc/ssl/cert.pem')] : [path.join(dir, 'etc/ssl/certs/ca-certificates.crt'), path.join(dir, 'etc/ssl/cert.pem')],
      extra: path.join(dir, 'usr/local/share/ca-certificates/e2b-ca.crt'),
    };
  };
  const bundle = (): string => readFileSync(path.join(dir, 'etc/ssl/certs/ca-certificates.crt'), 'utf8');

  it('appends to the bundle and keeps a copy for update-ca-certificates', async () => {
    const store = layout({ bundle: 'EXISTING\n' });
    expect(await new CaCertInstaller(silent, store).install(ca1)).toBe('installed');
    expect(bundle()).toBe('EXISTING\n' + ca1);
    expect(readFileSync(store.extra, 'utf8')).toBe(ca1);
  });

  it('writes through the link of an Alpine layout, leaving the link in place', async () => {
    const store = layout({ alpineLink: true, bundle: '' });
    await new CaCertInstaller(silent, store).install(ca1);
    expect(bundle()).toBe(ca1);
    expect(lstatSync(path.join(dir, 'etc/ssl/cert.pem')).isSymbolicLink()).toBe(true);
    expect(readFileSync(path.join(dir, 'etc/ssl/cert.pem'), 'utf8')).toBe(ca1);
  });

  it('creates the bundle when the image has none', async () => {
    const store = layout();
    expect(await new CaCertInstaller(silent, store).install(ca1)).toBe('installed');
    expect(bundle()).toBe(ca1);
  });

  it('is idempotent, also for a daemon restarted with the PEM already in the bundle', async () => {
    const store = layout({ bundle: 'EXISTING\n' });
    const installer = new CaCertInstaller(silent, store);
    await installer.install(ca1);
    expect(await installer.install(ca1.trimEnd() + '\n\n\n')).toBe('unchanged');
    expect(await new CaCertInstaller(silent, store).install(ca1)).toBe('unchanged');
    expect(bundle()).toBe('EXISTING\n' + ca1);
  });

  it('replaces the PEM it installed before, atomically and world-readable', async () => {
    const store = layout({ bundle: 'EXISTING' });
    const installer = new CaCertInstaller(silent, store);
    await installer.install(ca1);
    expect(bundle()).toBe('EXISTING\n' + ca1);
    await installer.install(ca2);
    expect(bundle()).toBe('EXISTING\n' + ca2);
    expect(statSync(path.join(dir, 'etc/ssl/certs/ca-certificates.crt')).mode & 0o777).toBe(0o644);
    expect(readFileSync(store.extra, 'utf8')).toBe(ca2);
  });

  it('refuses anything but complete certificates, touching nothing', async () => {
    const store = layout({ bundle: 'EXISTING\n' });
    const installer = new CaCertInstaller(silent, store);
    for (const bad of ['', 'hello', ca1.slice(0, 100), ca1.replace('-----END CERTIFICATE-----', ''), ca1 + '-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n']) {
      expect(pemProblem(bad)).toBeDefined();
      expect(await installer.install(bad)).toBe('invalid');
    }
    expect(bundle()).toBe('EXISTING\n');
    expect(pemProblem(`# two CAs\n${ca1}${ca2}`)).toBeUndefined();
  });
});
