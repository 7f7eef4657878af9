import { describe, expect, it } from 'vitest';
import { OutputFanout, OutputLagError, type FanoutLimits } from '../../../../src/services/process/output.js';

const limits: FanoutLimits = { primaryHighWater: 100, primaryLowWater: 20, followerLimit: 300 };

function setup() {
  const flow = { paused: false, pauses: 0, pause() { this.paused = true; this.pauses++; }, resume() { this.paused = false; } };
  const fanout = new OutputFanout<string>(flow, limits);
  return { flow, fanout };
}

const chunk = (n: number) => ({ kind: 'stdout' as const, data: Buffer.alloc(n, 97) });

describe('OutputFanout', () => {
  it('delivers every chunk to every subscriber, then the end', () => {
    const { fanout } = setup();
    const a = fanout.subscribe();
    const b = fanout.subscribe();
    fanout.push(chunk(10));
    fanout.end('done');
    for (const s of [a, b]) {
      expect(s.take()).toMatchObject({ type: 'data' });
      expect(s.take()).toEqual({ type: 'end', value: 'done' });
    }
  });

  it('pauses the process when the primary lags past its high water mark and resumes below low water', () => {
    const { flow, fanout } = setup();
    const primary = fanout.subscribe();
    fanout.push(chunk(60));
    expect(flow.paused).toBe(false);
    fanout.push(chunk(60));
    expect(flow.paused).toBe(true);
    primary.take();
    expect(flow.paused).toBe(true);
    primary.take();
    expect(flow.paused).toBe(false);
  });

  it('never pauses for a follower; cuts off a follower that lags past its limit', () => {
    const { flow, fanout } = setup();
    const primary = fanout.subscribe();
    const follower = fanout.subscribe();
    for (let i = 0; i < 10; i++) {
      fanout.push(chunk(50));
      primary.take();
    }
    expect(flow.pauses).toBe(0);
    const got = follower.take();
    expect(got?.type).toBe('error');
    expect(got?.type === 'error' && got.error).toBeInstanceOf(OutputLagError);
    expect(fanout.subscriberCount).toBe(1);
  });

  it('promotes the oldest follower to primary when the starting stream leaves', () => {
    const { flow, fanout } = setup();
    const starter = fanout.subscribe();
    const follower = fanout.subscribe();
    fanout.push(chunk(150));
    expect(flow.paused).toBe(true);
    starter.close();
    // The follower is primary now and holds 150 bytes: still paused until it drains.
    expect(flow.paused).toBe(true);
    follower.take();
    expect(flow.paused).toBe(false);
  });

  it('resumes the process when the only lagging subscriber leaves', () => {
    const { flow, fanout } = setup();
    const s = fanout.subscribe();
    fanout.push(chunk(200));
    expect(flow.paused).toBe(true);
    s.close();
    expect(flow.paused).toBe(false);
  });

  it('drops output nobody follows and answers late subscribers with the end only', () => {
    const { fanout } = setup();
    fanout.push(chunk(10));
    fanout.end('over');
    const late = fanout.subscribe();
    expect(late.take()).toEqual({ type: 'end', value: 'over' });
  });

  it('wakes a waiting consumer when data arrives', async () => {
    const { fanout } = setup();
    const s = fanout.subscribe();
    const waiting = s.wait(10_000);
    fanout.push(chunk(1));
    await waiting;
    expect(s.take()?.type).toBe('data');
  });

  it('wakes a waiting consumer when its signal aborts', async () => {
    const { fanout } = setup();
    const s = fanout.subscribe();
    const ac = new AbortController();
    const waiting = s.wait(10_000, ac.signal);
    ac.abort();
    await waiting;
    expect(s.take()).toBeUndefined();
  });
});
