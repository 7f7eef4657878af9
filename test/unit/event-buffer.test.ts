import { describe, expect, it } from 'vitest';
import { EventBuffer } from '../../src/services/filesystem/event-buffer.js';

describe('EventBuffer.next', () => {
  it('answers idle after each quiet wait, also after its timer fired once and events came between', async () => {
    const buf = new EventBuffer<string>(10);
    const signal = new AbortController().signal;
    expect(await buf.next(5, signal)).toBe('idle');
    const waiting = buf.next(60_000, signal);
    buf.push('a');
    expect(await waiting).toBe('a');
    expect(await buf.next(5, signal)).toBe('idle');
    expect(await buf.next(5, signal)).toBe('idle');
  });

  it('waits the timeout each call asks for', async () => {
    const buf = new EventBuffer<string>(10);
    const signal = new AbortController().signal;
    expect(await buf.next(5, signal)).toBe('idle');
    const waiting = buf.next(60_000, signal);
    await new Promise((r) => setTimeout(r, 30));
    buf.push('late');
    expect(await waiting).toBe('late');
  });

  it('hands over an event pushed while nobody waited, before any idle', async () => {
    const buf = new EventBuffer<string>(10);
    const signal = new AbortController().signal;
    expect(await buf.next(5, signal)).toBe('idle');
    buf.push('b');
    await new Promise((r) => setTimeout(r, 10));
    expect(await buf.next(5, signal)).toBe('b');
  });

  it('ends a wait when its signal aborts', async () => {
    const buf = new EventBuffer<string>(10);
    const ac = new AbortController();
    expect(await buf.next(5, ac.signal)).toBe('idle');
    const waiting = buf.next(60_000, ac.signal);
    ac.abort();
    expect(await waiting).toBe('aborted');
  });
});
