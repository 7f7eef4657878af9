import { parseArgs } from 'node:util';

export interface Config {
  port: number;
  gatewayPort: number;
  /** Hosts to bind; loopback (IPv4 and IPv6) unless --host says otherwise. */
  hosts: string[];
  user: string;
  workdir: string | undefined;
  accessToken: string | undefined;
  gatewayToken: string | undefined;
  instanceNonce: string | undefined;
  /** How long an MCP session on the gateway may sit idle (no request, no open stream) before it ends. */
  gatewaySessionIdleMs: number;
  logLevel: string;
  /** Forward loopback-only listeners to the external addresses (default: on when bound beyond loopback). */
  portForward: boolean;
  /** PicoD face port (AgentCube); 0: off. */
  picodPort: number;
  /** Root every PicoD path is confined to (PicoD's --workspace); undefined: the working directory. */
  workspace: string | undefined;
  /** The router's public key (PEM) from PICOD_AUTH_PUBLIC_KEY, read once at start. */
  picodPublicKey: string | undefined;
  /** Put the daemon and its children in cgroups of their own (off with --no-cgroups). */
  cgroups: boolean;
  /** Where cgroup v2 is mounted (envd's --cgroup-root). */
  cgroupRoot: string;
}

export const USAGE = `sandboxd: envd-compatible sandbox daemon with an MCP gateway

Usage: sandboxd [options]

  --port <n>            envd face port (default 49983)
  --gateway-port <n>    MCP gateway port (default 5600; 0 turns the gateway off)
  --host <addr>         address to bind (default: loopback, 127.0.0.1 and ::1);
                        use '::' for every interface
  --user <name>         default user for requests without one (default root)
  --workdir <dir>       default working directory (default: the user's home)
  --access-token <t>    require X-Access-Token from the start (env SANDBOXD_ACCESS_TOKEN)
  --gateway-token <t>   require 'Authorization: Bearer <t>' on the gateway (env SANDBOXD_GATEWAY_TOKEN)
  --instance-nonce <n>  gateway /health answers {"status":"ok","instance_nonce":"<n>"}
  --gateway-session-idle <s>  end a gateway MCP session idle this many seconds (default 600)
  --picod-port <n>      PicoD face port for AgentCube (env SANDBOXD_PICOD_PORT; default
                        8080 when PICOD_AUTH_PUBLIC_KEY is set, else off; 0 turns it off)
  --workspace <dir>     root of every PicoD path (default: the working directory)
  --log-level <level>   pino log level (default info)
  --port-forward        make services listening only on 127.0.0.1/::1 reachable on the
                        external addresses, same port (default: on when --host goes
                        beyond loopback); --no-port-forward turns it off
  --cgroup-root <dir>   where cgroup v2 is mounted (default /sys/fs/cgroup); as root the
                        daemon moves itself into <own cgroup>/daemon and its children into
                        <own cgroup>/sandbox/{user,ptys} with limits; --no-cgroups turns it off
  --version             print the version and exit
  --help                print this help and exit
`;

export class UsageError extends Error {}

function parsePort(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new UsageError(`${flag} '${value}' is not a port number (0-65535)`);
  }
  return n;
}

function parseSeconds(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} '${value}' is not a positive number of seconds`);
  return n;
}

export type ParsedArgs = { kind: 'help' } | { kind: 'version' } | { kind: 'run'; config: Config };

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): ParsedArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      allowNegative: true,
      options: {
        port: { type: 'string' },
        'gateway-port': { type: 'string' },
        host: { type: 'string', multiple: true },
        user: { type: 'string' },
        workdir: { type: 'string' },
        'access-token': { type: 'string' },
        'gateway-token': { type: 'string' },
        'instance-nonce': { type: 'string' },
        'gateway-session-idle': { type: 'string' },
        'log-level': { type: 'string' },
        'picod-port': { type: 'string' },
        workspace: { type: 'string' },
        'port-forward': { type: 'boolean' },
        cgroups: { type: 'boolean' },
        'cgroup-root': { type: 'string' },
        version: { type: 'boolean' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };
  const hosts = values.host && values.host.length > 0 ? values.host : ['127.0.0.1', '::1'];
  return {
    kind: 'run',
    config: {
      port: parsePort('--port', values.port, 49983),
      gatewayPort: parsePort('--gateway-port', values['gateway-port'], 5600),
      hosts,
      user: values.user ?? 'root',
      workdir: values.workdir,
      accessToken: values['access-token'] ?? (env.SANDBOXD_ACCESS_TOKEN || undefined),
      gatewayToken: values['gateway-token'] ?? (env.SANDBOXD_GATEWAY_TOKEN || undefined),
      instanceNonce: values['instance-nonce'],
      gatewaySessionIdleMs: parseSeconds('--gateway-session-idle', values['gateway-session-idle'], 600) * 1000,
      logLevel: values['log-level'] ?? env.SANDBOXD_LOG_LEVEL ?? 'info',
      portForward: values['port-forward'] ?? !isLoopbackOnly(hosts),
      // AgentCube injects the key into every PicoD pod; its presence alone means "serve PicoD on 8080".
      picodPort: parsePort('--picod-port', values['picod-port'] ?? (env.SANDBOXD_PICOD_PORT || undefined), env.PICOD_AUTH_PUBLIC_KEY ? 8080 : 0),
      workspace: values.workspace,
      picodPublicKey: env.PICOD_AUTH_PUBLIC_KEY || undefined,
      cgroups: values.cgroups ?? true,
      cgroupRoot: values['cgroup-root'] ?? '/sys/fs/cgroup',
    },
  };
}

/** True when every bound host is a loopback address. */
export function isLoopbackOnly(hosts: string[]): boolean {
  return hosts.every((h) => h === 'localhost' || h === '::1' || /^127\./.test(h));
}
