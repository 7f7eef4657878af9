/** Encodings envd can answer with; identity is implied unless refused. */
export type ContentCoding = 'gzip' | 'identity';

/**
 * Chooses the response coding from Accept-Encoding as envd does: gzip when the client accepts it,
 * else identity unless it was refused (`identity;q=0`, or `*;q=0` without identity). undefined = 406-like.
 */
export function negotiateEncoding(header: string | undefined): ContentCoding | undefined {
  if (!header || header.trim() === '') return 'identity';
  const q = new Map<string, number>();
  for (const part of header.split(',')) {
    const [nameRaw, ...params] = part.trim().split(';');
    const name = (nameRaw ?? '').trim().toLowerCase();
    if (!name) continue;
    let weight = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(p);
      if (m && m[1]) weight = Number(m[1]);
    }
    q.set(name, Number.isFinite(weight) ? weight : 0);
  }
  const star = q.get('*');
  const gzip = q.get('gzip') ?? star;
  if (gzip !== undefined && gzip > 0) return 'gzip';
  const identity = q.get('identity') ?? (star === 0 ? 0 : 1);
  return identity > 0 ? 'identity' : undefined;
}
