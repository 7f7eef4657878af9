import { readFile, statfs } from 'node:fs/promises';
import os from 'node:os';

export interface Metrics {
  ts: number;
  cpu_count: number;
  cpu_used_pct: number;
  mem_total_mib: number;
  mem_used_mib: number;
  mem_total: number;
  mem_used: number;
  mem_cache: number;
  disk_used: number;
  disk_total: number;
}

interface CpuSample {
  busy: number;
  total: number;
}

async function readCpuSample(): Promise<CpuSample | undefined> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0] ?? '';
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user/nice)
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
    const total = user + nice + system + idle + iowait + irq + softirq + steal;
    return { busy: total - idle - iowait, total };
  } catch {
    return undefined;
  }
}

async function readMeminfo(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  try {
    for (const line of (await readFile('/proc/meminfo', 'utf8')).split('\n')) {
      const m = /^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?/.exec(line);
      if (m && m[1] && m[2]) out.set(m[1], Number(m[2]) * (line.endsWith('kB') ? 1024 : 1));
    }
  } catch {
    // not Linux: fall back to os totals below
  }
  return out;
}

async function readNumber(path: string): Promise<number | undefined> {
  try {
    const v = Number((await readFile(path, 'utf8')).trim());
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * System metrics as envd reports them: CPU busy percent since the previous call, memory from
 * /proc/meminfo (bounded by a cgroup v2 memory limit when one is set), disk from statfs('/').
 */
export class MetricsSampler {
  private last: CpuSample | undefined;

  async prime(): Promise<void> {
    this.last = await readCpuSample();
  }

  async sample(): Promise<Metrics> {
    const cpu = await readCpuSample();
    let cpuPct = 0;
    if (cpu && this.last && cpu.total > this.last.total) {
      cpuPct = ((cpu.busy - this.last.busy) / (cpu.total - this.last.total)) * 100;
      cpuPct = Math.round(Math.min(100, Math.max(0, cpuPct)) * 100) / 100;
    }
    if (cpu) this.last = cpu;

    const mem = await readMeminfo();
    let total = mem.get('MemTotal') ?? os.totalmem();
    const free = mem.get('MemFree') ?? os.freemem();
    const buffers = mem.get('Buffers') ?? 0;
    const cached = (mem.get('Cached') ?? 0) + (mem.get('SReclaimable') ?? 0);
    let used = Math.max(0, total - free - buffers - cached);
    const limit = await readNumber('/sys/fs/cgroup/memory.max');
    if (limit !== undefined && limit > 0 && limit < total) {
      total = limit;
      const current = await readNumber('/sys/fs/cgroup/memory.current');
      if (current !== undefined) used = Math.min(current, total);
    }

    let diskTotal = 0;
    let diskUsed = 0;
    try {
      const s = await statfs('/');
      diskTotal = s.blocks * s.bsize;
      diskUsed = diskTotal - s.bavail * s.bsize;
    } catch {
      // leave zeros when statfs is unavailable
    }

    return {
      ts: Math.floor(Date.now() / 1000),
      cpu_count: os.availableParallelism(),
      cpu_used_pct: cpuPct,
      mem_total_mib: Math.floor(total / 1024 / 1024),
      mem_used_mib: Math.floor(used / 1024 / 1024),
      mem_total: total,
      mem_used: used,
      mem_cache: cached,
      disk_used: diskUsed,
      disk_total: diskTotal,
    };
  }
}
