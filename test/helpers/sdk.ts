import { Sandbox } from 'e2b';
import { SDK_PORT, startDaemon, type DaemonOptions, type RunningDaemon } from './daemon.js';

/** Starts the daemon on 49983 (debug mode's fixed port) and an SDK sandbox pointed at it. */
export async function startSdkDaemon(opts: Omit<DaemonOptions, 'port'> = {}): Promise<{ daemon: RunningDaemon; sandbox: Sandbox }> {
  const daemon = await startDaemon({ ...opts, port: SDK_PORT });
  const sandbox = await Sandbox.create({ debug: true });
  return { daemon, sandbox };
}
