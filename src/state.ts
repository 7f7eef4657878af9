import type { Config } from './config.js';

/**
 * Mutable daemon-wide settings: what flags gave at start and what `/init` changed later.
 * Every face reads from the same instance.
 */
export class DaemonState {
  accessToken: string | undefined;
  defaultUser: string;
  defaultWorkdir: string | undefined;
  /** Variables from `/init` merged into every process's environment. */
  readonly envVars = new Map<string, string>([['E2B_SANDBOX', 'true']]);
  /** Nanoseconds of the newest applied `/init` timestamp; older or equal ones are skipped. */
  lastInitNs = 0n;

  constructor(config: Pick<Config, 'accessToken' | 'user' | 'workdir'>) {
    this.accessToken = config.accessToken;
    this.defaultUser = config.user;
    this.defaultWorkdir = config.workdir;
  }
}

/** envd version this daemon is compatible with; gates features in clients that read it. */
export const ENVD_COMPAT_VERSION = '0.6.4';
