import { afterEach, describe, expect, it } from 'vitest';
import { migrate } from '../src/engine/migration.js';
import { HeartbeatObserver } from '../src/sim/guest/observer.js';
import type { TimerView } from '../src/sim/guest/timer.js';
import { MiB, type TestCluster, startTestCluster } from './helpers.js';
import { readTimer, tickRate } from './timerHelpers.js';

let cluster: TestCluster | null = null;
afterEach(async () => {
  await cluster?.stop();
  cluster = null;
});

const HZ = 1000;

describe('the guest timer tick (8254 → 8259 → vCPU) survives migration', () => {
  it('ticks continue at HZ on the destination, jiffies follow elapsed time, nothing stuck in service', async () => {
    const spec = {
      modules: [
        { name: 'heartbeat' as const, config: { periodNs: 1_000_000 } },
        { name: 'timer' as const, config: { hz: HZ } },
        { name: 'memoryLoad' as const, config: { workingSetBytes: 4 * MiB, dirtyRateBytesPerSec: 2e6, seed: 5, fill: 'random' } },
      ],
    };
    cluster = await startTestCluster([
      { name: 'node17', boot: spec, ramBytes: 16 * MiB, devices: ['pic', 'pit'] },
      { name: 'node42', devices: ['pic', 'pit'] },
    ]);
    const src = await cluster.client('node17');
    const dst = await cluster.client('node42');
    await new Promise((r) => setTimeout(r, 500));
    const warm = await readTimer(src);
    expect(Number(warm.delivered)).toBeGreaterThan(300); // the tick really runs through the chips
    let atPause: TimerView | null = null;
    const s = await migrate({
      src,
      dst,
      dstDataHost: '127.0.0.1',
      observer: new HeartbeatObserver(),
      options: { downtimeLimitMs: 100 },
      onPhase: async (p) => {
        if (p === 'final-copy') atPause = await readTimer(src);
      },
    });
    expect(s.error).toBeUndefined();
    expect(s.devices.map((d) => d.kind)).toEqual(['pit', 'pic']);
    for (const d of s.devices) expect(d.programs).toBe(1); // one agent round trip per device restore
    // Delivered interrupts on the destination come at HZ (the restored 8254 runs and the 8259 passes them).
    const { rate, b } = await tickRate(dst);
    expect(rate).toBeGreaterThan(HZ * 0.9);
    expect(rate).toBeLessThan(HZ * 1.1);
    // Jiffies across the migration follow elapsed guest time (no tick lost beyond what the pause explains, none doubled).
    const p = atPause!;
    const expected = ((b.lastTickNs - p.lastTickNs) * HZ) / 1e9;
    const got = Number(b.jiffies - p.jiffies);
    const tolerance = Math.max(1, s.downtimeMs / 100) + 1; // one tick per 100 ms of pause, plus the tick edge itself
    expect(Math.abs(got - expected)).toBeLessThanOrEqual(tolerance);
    // No interrupt stuck in service: the hypervisor's view of the destination 8259 after the guest's EOIs.
    const sh = (await dst.request('shadow', {})).shadow.pic as { master: { isr: number }; slave: { isr: number } };
    expect(sh.master.isr & ~0x01).toBe(0);
    expect(sh.slave.isr).toBe(0);
    expect(s.guestContinued).toBe(true);

    // And back: the destination's hypervisor must know the chips it restored (its shadows followed the
    // restore's own accesses), or capturing them on node42 would have nothing to go on.
    const back = await migrate({ src: dst, dst: src, dstDataHost: '127.0.0.1', observer: new HeartbeatObserver(), options: { downtimeLimitMs: 100 } });
    expect(back.error).toBeUndefined();
    expect(back.verified).toBe(true);
    const { rate: rateBack } = await tickRate(src);
    expect(rateBack).toBeGreaterThan(HZ * 0.9);
    expect(rateBack).toBeLessThan(HZ * 1.1);
  });
});
