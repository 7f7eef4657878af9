// The local E2B control plane and client proxy as a process of its own, for clients outside vitest (pytest):
//
//   node build/test-image/control-plane.mjs [--manifest <image.json>] [--template base]... [--api-key k]
//                                           [--host 127.0.0.1] [--api-port 0] [--proxy-port 0] [--domain d]
//                                           [--bind <host path>:<path inside>]...
//
// The manifest is the image `npm run test:image` assembled (default: $SANDBOXD_IMAGE_MANIFEST, which the image
// test runner sets). Prints one JSON line {"apiUrl","sandboxUrl","apiKey","domain","env"} once it listens;
// SIGTERM or SIGINT kills every sandbox and exits. --bind shows a host file or directory read-only in every
// sandbox (tools the image leaves out, e.g. a Node for an MCP server). Must run where the sandboxes' veths may
// live (root, in the test's own network namespace). Bundled by esbuild into build/test-image/control-plane.mjs.
import { parseArgs } from 'node:util';
import { startControlPlane, templatesFromManifest } from './control-plane.js';
import { bindReadOnly, MANIFEST_ENV } from './sandbox.js';

const { values } = parseArgs({
  options: {
    manifest: { type: 'string' },
    template: { type: 'string', multiple: true },
    'api-key': { type: 'string' },
    host: { type: 'string' },
    'api-port': { type: 'string' },
    'proxy-port': { type: 'string' },
    domain: { type: 'string' },
    bind: { type: 'string', multiple: true },
  },
});

const manifest = values.manifest ?? process.env[MANIFEST_ENV];
if (!manifest) {
  process.stderr.write(`control-plane: pass --manifest or set ${MANIFEST_ENV} (npm run test:image sets it)\n`);
  process.exit(2);
}

const binds = (values.bind ?? []).map((b) => {
  const at = b.lastIndexOf(':');
  if (at <= 0 || at === b.length - 1) {
    process.stderr.write(`control-plane: --bind wants <host path>:<path inside>, got '${b}'\n`);
    process.exit(2);
  }
  return { host: b.slice(0, at), inside: b.slice(at + 1) };
});

const cp = await startControlPlane({
  templates: templatesFromManifest(manifest, values.template ?? ['base']),
  apiKey: values['api-key'],
  host: values.host,
  apiPort: values['api-port'] === undefined ? undefined : Number(values['api-port']),
  proxyPort: values['proxy-port'] === undefined ? undefined : Number(values['proxy-port']),
  domain: values.domain,
  prepare: (sandbox) => {
    for (const { host, inside } of binds) bindReadOnly(sandbox, host, inside);
  },
  log: (msg) => process.stderr.write(`control-plane: ${msg}\n`),
});
process.stdout.write(`${JSON.stringify({ apiUrl: cp.apiUrl, sandboxUrl: cp.sandboxUrl, apiKey: cp.apiKey, domain: cp.domain, env: cp.env })}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  cp.close().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`control-plane: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
