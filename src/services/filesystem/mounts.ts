import { readFile } from 'node:fs/promises';

/** Decodes the octal escapes (`\040` for a space, ...) the kernel writes in mountinfo paths. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The mount points named in a mountinfo text (the fifth field of each line). */
export function parseMountPoints(mountinfo: string): Set<string> {
  const points = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    const point = line.split(' ', 5)[4];
    if (point) points.add(unescapeMountPath(point));
  }
  return points;
}

/**
 * The daemon's mount points as they stand now (read afresh: a sandbox may mount a bucket at any
 * time), or undefined when /proc cannot tell.
 */
export async function currentMountPoints(): Promise<Set<string> | undefined> {
  try {
    return parseMountPoints(await readFile('/proc/self/mountinfo', 'utf8'));
  } catch {
    return undefined;
  }
}
