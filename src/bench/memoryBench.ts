import { randomBytes } from 'node:crypto';
import { migrate } from '../engine/migration.js';
import type { MigrationEvent, MigrationSummary } from '../engine/types.js';
import { AgentClient } from '../protocol/client.js';
import { startNode } from '../sim/cluster.js';
import { MODULE_AREA_ADDR } from '../sim/guest/layout.js';
import type { GuestSpec } from '../sim/guest/os.js';
import { HeartbeatObserver } from '../sim/guest/observer.js';

const MiB = 1024 * 1024;

/** The benchmark's guest: its whole RAM alternates 1 MiB of random bytes and 1 MiB of zeros. */
export function halfRandomSpec(ram: number, dirtyRate = 0, heartbeat = false): GuestSpec {
  const ws = ram - MODULE_AREA_ADDR - 2 * MiB;
  return {
    modules: [
      ...(heartbeat ? [{ name: 'heartbeat' as const, config: { periodNs: 1_000_000 } }] : []),
      { name: 'memoryLoad' as const, config: { workingSetBytes: ws, dirtyRateBytesPerSec: dirtyRate, seed: 42, fill: 'halfRandom' } },
    ],
  };
}

export interface MemoryBenchResult {
  totalMs: number;
  payloadBytes: number;
  rounds: number;
  downtimeMs: number;
  guestDowntimeMs: number | null;
  verified: boolean;
  coordinatorMaxRssMB: number;
  summary: MigrationSummary;
}

/**
 * Migrates a guest between two simulated nodes (separate processes) over
 * loopback and measures it. `paused`: the guest is stopped first, as in the
 * QEMU comparison; otherwise it runs with `dirtyRate`.
 */
export async function runMemoryBench(o: { ram: number; paused: boolean; dirtyRate?: number; bandwidth?: number; downtimeLimitMs?: number; onEvent?: (e: MigrationEvent) => void }): Promise<MemoryBenchResult> {
  const key = randomBytes(32);
  const common = { host: '127.0.0.1', port: 0, ramCapacity: o.ram, keyHex: key.toString('hex'), devices: [] as string[] };
  const [a, b] = await Promise.all([
    startNode({ ...common, name: 'node17', boot: { ramBytes: o.ram, spec: halfRandomSpec(o.ram, o.dirtyRate ?? 0, !o.paused) } }, { startTimeoutMs: 120_000 }),
    startNode({ ...common, name: 'node42' }),
  ]);
  let rssMax = process.memoryUsage().rss;
  const rssTimer = setInterval(() => (rssMax = Math.max(rssMax, process.memoryUsage().rss)), 20);
  try {
    const src = await AgentClient.connect(a.url, { node: 'node17', key });
    const dst = await AgentClient.connect(b.url, { node: 'node42', key });
    if (o.paused) await src.request('pause', {});
    else await new Promise((r) => setTimeout(r, 500)); // let the load settle
    const summary = await migrate({
      src,
      dst,
      dstDataHost: '127.0.0.1',
      observer: new HeartbeatObserver(),
      options: { ...(o.bandwidth ? { bandwidth: o.bandwidth } : {}), ...(o.downtimeLimitMs ? { downtimeLimitMs: o.downtimeLimitMs } : {}) },
      ...(o.onEvent ? { onEvent: o.onEvent } : {}),
    });
    src.close();
    dst.close();
    if (!summary.ok) throw new Error(`benchmark migration failed: ${summary.error?.message}`);
    return {
      totalMs: summary.totalMs,
      payloadBytes: summary.bytesSent,
      rounds: summary.rounds,
      downtimeMs: summary.downtimeMs,
      guestDowntimeMs: summary.guestDowntimeMs,
      verified: summary.verified,
      coordinatorMaxRssMB: rssMax / MiB,
      summary,
    };
  } finally {
    clearInterval(rssTimer);
    a.kill();
    b.kill();
    await Promise.all([a.exited, b.exited]);
  }
}
