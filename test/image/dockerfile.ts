/**
 * Just enough of the Dockerfile format to replay Dockerfile.envd's runtime stage without Docker: line
 * continuations, comments, ARG defaults in FROM, and the instructions that stage uses. Anything else
 * is an error, so a change to the Dockerfile that the rootfs test cannot honour fails loudly.
 */

export interface Copy {
  /** The stage copied from (`--from=`), if any. */
  from: string | undefined;
  sources: string[];
  dest: string;
}

export interface Stage {
  name: string | undefined;
  base: string;
  workdir: string;
  runs: string[];
  copies: Copy[];
  env: Record<string, string>;
  entrypoint: string[];
  cmd: string[];
}

/** Joins continued lines and drops comments and blank lines; returns [instruction, rest]. */
function instructions(text: string): [string, string][] {
  const out: [string, string][] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (pending === '' && /^\s*#/.test(line)) continue;
    if (line.endsWith('\\')) {
      // Docker drops the backslash and the newline: the pieces join into one line.
      pending += line.slice(0, -1);
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (full === '') continue;
    const m = /^(\S+)\s*([\s\S]*)$/.exec(full)!;
    out.push([m[1]!.toUpperCase(), m[2]!]);
  }
  if (pending.trim() !== '') throw new Error('Dockerfile ends inside a continued line');
  return out;
}

/** `["a", "b"]` (exec form) only: the shell form would put /bin/sh -c in front, which the image avoids. */
function execForm(instruction: string, rest: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(rest);
  } catch {
    throw new Error(`${instruction} must use the exec (JSON array) form, got: ${rest}`);
  }
  if (!Array.isArray(parsed) || !parsed.every((s) => typeof s === 'string')) throw new Error(`${instruction} must be an array of strings`);
  return parsed as string[];
}

function substitute(value: string, args: Record<string, string>): string {
  return value.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => {
    const name = (a ?? b)!;
    if (!(name in args)) throw new Error(`Dockerfile refers to undefined ARG ${name}`);
    return args[name]!;
  });
}

/** Parses a Dockerfile into its stages, in order. */
export function parseDockerfile(text: string): Stage[] {
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const [instr, rest] of instructions(text)) {
    const stage = stages[stages.length - 1];
    if (instr === 'ARG') {
      const [name, value = ''] = rest.split('=', 2);
      if (!stage) args[name!.trim()] = value.trim();
      continue;
    }
    if (instr === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest.trim());
      if (!m) throw new Error(`cannot read FROM ${rest}`);
      stages.push({ name: m[2], base: substitute(m[1]!, args), workdir: '/', runs: [], copies: [], env: {}, entrypoint: [], cmd: [] });
      continue;
    }
    if (!stage) throw new Error(`${instr} before the first FROM`);
    switch (instr) {
      case 'RUN':
        stage.runs.push(rest);
        break;
      case 'WORKDIR':
        stage.workdir = rest.startsWith('/') ? rest : `${stage.workdir.replace(/\/$/, '')}/${rest}`;
        break;
      case 'COPY': {
        const words = rest.split(/\s+/);
        let from: string | undefined;
        while (words[0]?.startsWith('--')) {
          const flag = words.shift()!;
          if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
          else throw new Error(`COPY flag ${flag} is not supported by the rootfs test`);
        }
        if (words.length < 2) throw new Error(`COPY needs a source and a destination: ${rest}`);
        const dest = words.pop()!;
        stage.copies.push({ from, sources: words, dest: dest.startsWith('/') ? dest : `${stage.workdir.replace(/\/$/, '')}/${dest}` });
        break;
      }
      case 'ENV': {
        const m = /^(\w+)(?:=|\s+)(.*)$/.exec(rest);
        if (!m) throw new Error(`cannot read ENV ${rest}`);
        stage.env[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
        break;
      }
      case 'ENTRYPOINT':
        stage.entrypoint = execForm(instr, rest);
        break;
      case 'CMD':
        stage.cmd = execForm(instr, rest);
        break;
      case 'EXPOSE':
      case 'LABEL':
        break;
      default:
        throw new Error(`Dockerfile instruction ${instr} is not supported by the rootfs test`);
    }
  }
  return stages;
}

/** The argv of a systemd unit's ExecStart= (plain words; no quoting or specifiers used there). */
export function execStart(unit: string): string[] {
  const lines = unit.split('\n').filter((l) => /^ExecStart=/.test(l));
  if (lines.length !== 1) throw new Error(`expected one ExecStart= line, found ${lines.length}`);
  return lines[0]!.slice('ExecStart='.length).trim().split(/\s+/);
}
