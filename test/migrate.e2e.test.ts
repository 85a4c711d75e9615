import { afterEach, describe, expect, it } from 'vitest';
import { migrate } from '../src/engine/migration.js';
import type { MigrationEvent } from '../src/engine/types.js';
import { HeartbeatObserver, readHeartbeat } from '../src/sim/guest/observer.js';
import { MiB, type TestCluster, startTestCluster, workloadSpec } from './helpers.js';

let cluster: TestCluster | null = null;
afterEach(async () => {
  await cluster?.stop();
  cluster = null;
});

describe('migrate a running guest between two simulated nodes', () => {
  it('moves memory and vCPU, verifies, and the guest continues on the destination', async () => {
    cluster = await startTestCluster([
      { name: 'node17', boot: workloadSpec({ workingSetBytes: 16 * MiB, dirtyRate: 4e6 }), ramBytes: 32 * MiB },
      { name: 'node42' },
    ]);
    const src = await cluster.client('node17');
    const dst = await cluster.client('node42');
    const events: MigrationEvent[] = [];
    const s = await migrate({ src, dst, dstDataHost: '127.0.0.1', observer: new HeartbeatObserver(), options: { downtimeLimitMs: 100 }, onEvent: (e) => events.push(e) });
    expect(s.error).toBeUndefined();
    expect(s.ok).toBe(true);
    expect(s.verified).toBe(true);
    expect(s.guestContinued).toBe(true);
    expect(s.guestDowntimeMs).not.toBeNull();
    expect(s.zeroPages).toBeGreaterThan(0);
    expect((await src.request('state', {})).guest).toBe('released');
    expect((await dst.request('state', {})).guest).toBe('running');
    const progress = events.filter((e) => e.type === 'round').map((e) => (e as { progress: number }).progress);
    for (let i = 1; i < progress.length; i++) expect(progress[i]!).toBeGreaterThanOrEqual(progress[i - 1]!);
    const before = (await readHeartbeat(dst))!.counter;
    await new Promise((r) => setTimeout(r, 100));
    expect((await readHeartbeat(dst))!.counter).toBeGreaterThan(before + 20n);
  });
});
