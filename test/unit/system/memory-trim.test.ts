import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { trim } from 'sandboxd-spawn';
import { MALLOC_TRIM_ENV, startIdleTrim } from '../../../src/system/memory-trim.js';

/** A logger at debug whose records resolve `seen` once one says `msg`. */
function capture(msg: string) {
  const records: Record<string, unknown>[] = [];
  let found: (r: Record<string, unknown>) => void = () => {};
  const seen = new Promise<Record<string, unknown>>((resolve) => (found = resolve));
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      const r = JSON.parse(chunk.toString()) as Record<string, unknown>;
      records.push(r);
      if (r.msg === msg) found(r);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), records, seen };
}

/** Keeps the event loop busy for `ms`. */
function spin(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end);
}

describe('the addon\'s malloc trim', () => {
  it('runs malloc_trim(0) and says whether it released anything', () => {
    expect(typeof trim()).toBe('boolean');
  });
});

describe('the idle trim', () => {
  it('trims once the loop goes quiet after a busy spell, with the RSS before and after', async () => {
    const { logger, seen } = capture('malloc trim');
    const stop = startIdleTrim(logger);
    try {
      spin(1200);
      const r = await seen;
      expect(r.rssBefore).toBeGreaterThan(0);
      expect(r.rssAfter).toBeGreaterThan(0);
    } finally {
      stop();
    }
  });

  it(`does nothing with ${MALLOC_TRIM_ENV}=0, while one started without it trims`, async () => {
    const off = capture('malloc trim');
    const on = capture('malloc trim');
    process.env[MALLOC_TRIM_ENV] = '0';
    const stopOff = startIdleTrim(off.logger);
    delete process.env[MALLOC_TRIM_ENV];
    const stopOn = startIdleTrim(on.logger);
    try {
      spin(1200);
      await on.seen;
      expect(off.records).toEqual([]);
    } finally {
      stopOff();
      stopOn();
    }
  });
});
