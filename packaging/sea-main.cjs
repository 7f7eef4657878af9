'use strict';
// The entry of build/sandboxd, the single executable (a Node SEA). packaging/package.mjs embeds it as the SEA's
// main script with MANIFEST filled in, next to these SEA assets:
//
//   sandboxd.cjs          the daemon's first stage (src/main.ts: flags, the faces' ports, the plain /health)
//   sandboxd-daemon.cjs   the rest of the daemon (src/run.ts), which the first stage asks for once it listens
//                         (both CommonJS bundles from src/ through packaging/bundle.mjs)
//   <name>.cache          V8's code cache for each, made by running this entry once at package time
//   addons/<file>         the native addon packages (node-pty, fs-xattr, sandboxd-spawn): their JS and compiled .node files
//
// At start it checks every asset it uses against the size and CRC-32 in MANIFEST (a damaged or truncated file
// fails here with one clear line and exit code 70, not somewhere inside the daemon), makes sure the addons are
// written out to a private directory (a .node file must be a real file for dlopen, so they are written once,
// content-addressed by their hash), compiles each bundle with its code cache when it is needed, and hands the
// bundles a `require` that loads the addons from there when the daemon first asks for them. CRC-32 (zlib's, native) rather than
// SHA-256: it finds accidental damage (a flipped bit, a cut) as well, and node:crypto would cost ~20 ms and
// ~3 MiB at every start. The checks are against damage, not an attacker, who could rewrite MANIFEST as easily.
//
// Outside a SEA (package time, and to measure the bundle alone) the assets come from the folder named by
// SANDBOXD_SEA_STAGE; with SANDBOXD_SEA_WRITE_CACHE=<dir> the entry writes V8's code caches there on SIGUSR2,
// then exits.
const { Buffer } = require('node:buffer');
const fs = require('node:fs');
const { createRequire } = require('node:module');
const os = require('node:os');
const path = require('node:path');
const process = require('node:process');
const vm = require('node:vm');
// zlib's native CRC-32 without node:zlib's JavaScript, which costs ~1 ms of CPU to load at every start for
// this one function (node:http, loaded anyway, shares only its streams). crc32(data, value) on the binding is
// what node:zlib's crc32 calls. process.binding is deprecated in documentation only (DEP0111; a warning only
// under --pending-deprecation, which the executable's fixed execArgv cannot get); where the binding or its
// crc32 is missing, node:zlib's own serves.
const crc32 = (() => {
  try {
    const binding = process.binding('zlib');
    if (typeof binding.crc32 === 'function') return (bytes) => binding.crc32(bytes, 0);
  } catch {
    // no process.binding('zlib') on this runtime
  }
  return require('node:zlib').crc32;
})();
const { setImmediate } = require('node:timers');

// Milliseconds since the process started (process.uptime: node:perf_hooks would cost ~2 ms to load).
const mark = (what) => process.env.SANDBOXD_SEA_DEBUG && process.stderr.write(`sandboxd: ${what} at ${(process.uptime() * 1000).toFixed(1)} ms\n`);
mark('main script');

/** @type {{ version: string, node: string, key: string, files: Record<string, { size: number, crc32: number }>, addons: string[] }} */
const MANIFEST = JSON.parse('__SANDBOXD_MANIFEST__');

/** Exit code for a damaged executable: systemd's unit does not restart on it (RestartPreventExitStatus). */
const EXIT_DAMAGED = 70;

function damaged(what) {
  process.stderr.write(`sandboxd: this executable is damaged (${what}); install build/sandboxd again\n`);
  process.exit(EXIT_DAMAGED);
}

const sea = (() => {
  try {
    const s = require('node:sea');
    return s.isSea() ? s : undefined;
  } catch {
    return undefined; // node:sea is missing on old runtimes: never a SEA there
  }
})();

/** An asset's bytes, checked against the manifest. */
function asset(name) {
  const want = MANIFEST.files[name];
  if (want === undefined) damaged(`no checksum for asset '${name}'`);
  let bytes;
  try {
    bytes = sea ? Buffer.from(sea.getRawAsset(name)) : fs.readFileSync(path.join(process.env.SANDBOXD_SEA_STAGE ?? '.', name));
  } catch (err) {
    damaged(`asset '${name}' is missing: ${err.message}`);
  }
  if (!matches(bytes, want)) damaged(`asset '${name}' does not match its checksum`);
  return bytes;
}

function matches(bytes, want) {
  return bytes.length === want.size && crc32(bytes) === want.crc32;
}

// --- the native addons, written out to a private directory -------------------------------------------------

/** Mount options of the mount that holds `dir` (the longest mount point that is a prefix of it). */
function mountOptions(dir) {
  let best = { point: '', options: [] };
  let info;
  try {
    info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  for (const line of info.split('\n')) {
    const f = line.split(' ');
    if (f.length < 6) continue;
    const point = f[4].replace(/\\(\d{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    const inside = dir === point || dir.startsWith(point === '/' ? '/' : `${point}/`);
    if (inside && point.length >= best.point.length) best = { point, options: f[5].split(',') };
  }
  return best.options;
}

/** Where the addons may go, most private first: root's /run and /var/lib, a user's runtime and cache dirs, then tmp. */
function candidates() {
  const uid = process.geteuid();
  const out = [];
  if (process.env.SANDBOXD_ADDON_DIR) out.push(process.env.SANDBOXD_ADDON_DIR);
  if (uid === 0) out.push('/run/sandboxd/addons', '/var/lib/sandboxd/addons');
  else {
    if (process.env.XDG_RUNTIME_DIR) out.push(path.join(process.env.XDG_RUNTIME_DIR, 'sandboxd'));
    out.push(path.join(os.homedir(), '.cache/sandboxd'));
  }
  out.push(path.join(os.tmpdir(), `sandboxd-${uid}`));
  return out;
}

/**
 * Makes `dir` (and missing parents) and proves it private: a real directory owned by us that nobody else may
 * write (0700 when we made it), on a mount that allows mapping code (not noexec).
 */
function privateDir(dir) {
  fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if (err.code !== 'EEXIST') throw err;
  }
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new Error('not a directory');
  if (st.uid !== process.geteuid()) throw new Error(`owned by uid ${st.uid}, not ${process.geteuid()}`);
  if ((st.mode & 0o077) !== 0) throw new Error(`mode ${(st.mode & 0o777).toString(8)} lets others in (want 700)`);
  const real = fs.realpathSync(dir);
  if (mountOptions(real).includes('noexec')) throw new Error('on a noexec mount');
  return real;
}

/** True when every addon file under `dir` is there with the manifest's hash. */
function intact(dir) {
  return MANIFEST.addons.every((name) => {
    try {
      return matches(fs.readFileSync(path.join(dir, name)), MANIFEST.files[`addons/${name}`]);
    } catch {
      return false;
    }
  });
}

/**
 * The addons' folder `<private dir>/<key>`, written once per content hash: into a temporary name, then renamed
 * into place, so two daemons starting at once either both find a whole folder or one of them wins the rename.
 */
function extractInto(base) {
  const final = path.join(base, MANIFEST.key);
  if (fs.existsSync(final)) {
    if (intact(final)) return final;
    // Damaged or tampered with: move it aside (atomic), then write a fresh one.
    const aside = path.join(base, `.bad-${MANIFEST.key}-${process.pid}-${Date.now()}`);
    fs.renameSync(final, aside);
    fs.rmSync(aside, { recursive: true, force: true });
  }
  const tmp = fs.mkdtempSync(path.join(base, `.${MANIFEST.key}-`));
  try {
    for (const name of MANIFEST.addons) {
      const file = path.join(tmp, name);
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      fs.writeFileSync(file, asset(`addons/${name}`), { mode: 0o600 });
    }
    try {
      fs.renameSync(tmp, final);
    } catch (err) {
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
      // Another daemon got there first; its folder must be as good as ours.
      if (!intact(final)) throw new Error(`${final} appeared but does not match the manifest`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return final;
}

/**
 * The folder holding the extracted addons, made (or checked) at start so that a host with no usable
 * directory fails at once with the reasons, not at the daemon's first PTY or file request. It runs just after
 * the daemon's start code (see the end of this file), off the path to the first /health: proving the folder
 * (mountinfo, reading and checking every extracted file) took ~5 ms, and a first start writes it out too.
 */
function addonFolder() {
  const tried = [];
  for (const dir of candidates()) {
    try {
      const folder = extractInto(privateDir(dir));
      if (process.env.SANDBOXD_SEA_DEBUG) process.stderr.write(`sandboxd: addons in ${folder}\n`);
      return folder;
    } catch (err) {
      tried.push(`${dir}: ${err.message}`);
    }
  }
  process.stderr.write(`sandboxd: no private directory for the native addons (set SANDBOXD_ADDON_DIR):\n  ${tried.join('\n  ')}\n`);
  process.exit(1);
}

let folder;
let addonRequire;

/** A require that resolves the addon packages in their extracted folder; they load when first asked for. */
function requireAddon(id) {
  folder ??= addonFolder();
  addonRequire ??= createRequire(path.join(folder, 'node_modules', '.sandboxd'));
  return addonRequire(id);
}

// --- the daemon -------------------------------------------------------------------------------------------

const addonNames = new Set(MANIFEST.addons.map((f) => f.split('/')[1]));
/** The second stage's id in the first stage's bundle (packaging/bundle.mjs, STAGE2_ID). */
const STAGE2 = 'sandboxd-daemon';

function bundleRequire(id) {
  if (id === STAGE2) return loadStage2();
  return addonNames.has(id) ? requireAddon(id) : require(id);
}

const writeCache = process.env.SANDBOXD_SEA_WRITE_CACHE;
// SANDBOXD_SEA_NO_CACHE=1 compiles from source, to measure what the cache saves.
const noCache = Boolean(writeCache) || process.env.SANDBOXD_SEA_NO_CACHE === '1';
/** Every script compiled so far, by name: the package-time cache writer makes each one's cache. */
const compiled = new Map();

/** Checks and compiles (with its code cache) one of the daemon's two CommonJS bundles, `<name>.cjs`. */
function compile(name) {
  const source = asset(`${name}.cjs`).toString('latin1'); // the bundles are ASCII (esbuild charset: 'ascii')
  const cachedData = noCache ? undefined : asset(`${name}.cache`);
  mark(`${name}.cjs checked`);
  const script = new vm.Script(source, { filename: `${name}.cjs`, cachedData });
  compiled.set(name, script);
  mark(`${name}.cjs compiled`);
  if (process.env.SANDBOXD_SEA_DEBUG) process.stderr.write(`sandboxd: code cache ${cachedData ? (script.cachedDataRejected ? 'rejected' : 'accepted') : 'absent'} (${name})\n`);
  return script;
}

/** Runs a compiled bundle's top level with `bundleRequire` as its require; returns its exports. */
function run(name, script) {
  const mod = { exports: {} };
  script.runInThisContext().call(mod.exports, mod.exports, bundleRequire, mod, path.join(path.dirname(process.execPath), `${name}.cjs`), path.dirname(process.execPath));
  mark(`${name}.cjs ran`);
  return mod.exports;
}

/** The event loop's next two polls for I/O (src/early.ts, ioTurns): a connection accepted, then its request read. */
const ioTurns = () => new Promise((resolve) => setImmediate(() => setImmediate(resolve)));

/**
 * What the first stage gets for the second (src/run.ts: the logger, survival, the faces' handlers), which it asks
 * for once the faces' ports listen: `runDaemon`, which checks and compiles the script on its first call, gives
 * the event loop its turns, runs the script's top level, gives them again, then runs the daemon. So a probe that
 * connects meanwhile waits for one of those steps at most. The addons' folder is made or checked in the turn
 * after the top level, unless the daemon asked for an addon before.
 */
function loadStage2() {
  return {
    async runDaemon(...args) {
      const script = compile(STAGE2);
      await ioTurns();
      const stage2 = run(STAGE2, script);
      setImmediate(() => {
        folder ??= addonFolder();
        mark('addons checked');
      });
      await ioTurns();
      return stage2.runDaemon(...args);
    },
  };
}

if (writeCache) {
  // Package time: the packager starts the daemon, waits for its first /health and its first RPC (so that V8 has
  // compiled what a start and a first request run, in both stages), then sends SIGUSR2 for their caches.
  process.once('SIGUSR2', () => {
    for (const [name, script] of compiled) fs.writeFileSync(path.join(writeCache, `${name}.cache`), script.createCachedData());
    process.exit(0);
  });
}

mark('entry');
// The first stage (src/main.ts): the flags, then the faces' ports and the plain /health; it asks for the second.
run('sandboxd', compile('sandboxd'));
