import { X509Certificate } from 'node:crypto';
import { appendFile, mkdir, open, readFile, realpath, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log.js';
import { tempPathFor } from '../services/filesystem/replace-hints.js';

/**
 * `/init`'s `caBundle`: PEM certificates put into the system trust store, as envd does
 * (internal/host/cacerts.go; E2B hands its egress proxy's CA over this way). Debian, Ubuntu and
 * Alpine keep the bundle every TLS client reads at /etc/ssl/certs/ca-certificates.crt (Alpine's
 * /etc/ssl/cert.pem links to it) and rebuild it from /usr/local/share/ca-certificates/*.crt when
 * update-ca-certificates runs; so the PEM is appended to the bundle, which makes it trusted at once,
 * and kept as e2b-ca.crt in the second place, which keeps it trusted through a rebuild.
 *
 * Installing the same PEM again changes nothing (also after a daemon restart: the bundle is
 * searched); a new PEM replaces the one this daemon installed before. Unlike envd, which appends
 * whatever it is given, a bundle that is not all valid certificates is refused and the trust store
 * left as it was; and a trust store that cannot be written (read-only image) is only logged. Either
 * way `/init` still answers 204, as envd does for any PEM.
 */

export interface TrustStorePaths {
  /** Candidates for the bundle, first existing wins; the first is created when none exists. */
  bundles: string[];
  /** Where update-ca-certificates finds local certificates. */
  extra: string;
}

export const SYSTEM_TRUST_STORE: TrustStorePaths = {
  bundles: ['/etc/ssl/certs/ca-certificates.crt', '/etc/ssl/cert.pem'],
  extra: '/usr/local/share/ca-certificates/e2b-ca.crt',
};

export type CaInstallOutcome = 'installed' | 'unchanged' | 'invalid' | 'unwritable' | 'failed';

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const ANY_BEGIN = /-----BEGIN [^-]*-----/g;

/** Why `pem` is not a bundle of certificates, or undefined when every block parses. */
export function pemProblem(pem: string): string | undefined {
  const blocks = pem.match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) return 'no PEM certificate block';
  const begins = pem.match(ANY_BEGIN)?.length ?? 0;
  if (begins !== blocks.length) return 'a PEM block that is not a complete certificate';
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      return `certificate ${i + 1} does not parse: ${(err as Error).message}`;
    }
  }
  return undefined;
}

const UNWRITABLE = new Set(['EROFS', 'EACCES', 'EPERM', 'ENOSPC', 'EDQUOT', 'EBUSY']);

export class CaCertInstaller {
  /** The PEM this daemon put into the bundle last (removed when another replaces it). */
  private installed: string | undefined;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly logger: Logger,
    private readonly store: TrustStorePaths = SYSTEM_TRUST_STORE,
  ) {}

  /** Installs `pem`, one install at a time; what went wrong is logged, never thrown. */
  install(pem: string): Promise<CaInstallOutcome> {
    const run = this.tail.then(() => this.installNow(pem));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async installNow(pem: string): Promise<CaInstallOutcome> {
    const normalized = pem.replace(/\n+$/, '') + '\n';
    const problem = pemProblem(normalized);
    if (problem) {
      this.logger.warn({ problem }, 'caBundle is not a PEM certificate bundle; trust store left as it was');
      return 'invalid';
    }
    if (normalized === this.installed) {
      this.logger.debug('CA bundle unchanged, skipping install');
      return 'unchanged';
    }
    let bundle: string | undefined;
    try {
      bundle = await this.bundlePath();
      const changed = await this.updateBundle(bundle, normalized);
      this.installed = normalized;
      await this.keepForRebuilds(normalized);
      this.logger.info({ bundle, changed }, changed ? 'CA certificates added to the trust store' : 'CA certificates already trusted');
      return changed ? 'installed' : 'unchanged';
    } catch (err) {
      if (UNWRITABLE.has((err as NodeJS.ErrnoException).code ?? '')) {
        this.logger.warn({ err, bundle }, 'trust store is not writable; CA bundle not installed');
        return 'unwritable';
      }
      this.logger.error({ err, bundle }, 'CA bundle not installed');
      return 'failed';
    }
  }

  private async bundlePath(): Promise<string> {
    for (const candidate of this.store.bundles) {
      try {
        return await realpath(candidate);
      } catch {
        // not this one
      }
    }
    const first = this.store.bundles[0]!;
    await mkdir(path.dirname(first), { recursive: true });
    await writeFile(first, '', { flag: 'a', mode: 0o644 });
    return first;
  }

  /** Adds `pem` to the bundle, dropping the one installed before; false when nothing changed. */
  private async updateBundle(bundle: string, pem: string): Promise<boolean> {
    const content = await readFile(bundle, 'utf8');
    const previous = this.installed;
    const kept = previous && content.includes(previous) ? content.split(previous).join('') : content;
    if (kept === content) {
      if (content.includes(pem)) return false;
      // The common case, as envd's: a plain append, which also works on a bind-mounted bundle.
      await appendFile(bundle, (content === '' || content.endsWith('\n') ? '' : '\n') + pem);
      return true;
    }
    const next = kept.includes(pem) ? kept : kept + (kept === '' || kept.endsWith('\n') ? '' : '\n') + pem;
    await replaceFile(bundle, next);
    return true;
  }

  private async keepForRebuilds(pem: string): Promise<void> {
    try {
      await mkdir(path.dirname(this.store.extra), { recursive: true });
      await replaceFile(this.store.extra, pem);
    } catch (err) {
      this.logger.warn({ err, path: this.store.extra }, 'could not keep the CA certificates for update-ca-certificates');
    }
  }
}

/** Writes `text` beside `file` and renames it over, so readers never see half a bundle. */
async function replaceFile(file: string, text: string): Promise<void> {
  const tmp = tempPathFor(file);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(text);
      await fh.chmod(0o644);
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
