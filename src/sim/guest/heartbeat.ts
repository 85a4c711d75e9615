import type { GuestContext, GuestModule } from './context.js';

/**
 * Heartbeat: every `periodNs` of guest time, bump a counter, extend a running
 * checksum over the counter, and record how long it has been since the last
 * beat. Gaps longer than three periods go into a ring of gap records, from
 * which the guest-observed downtime of a migration is read afterwards.
 *
 * Region layout (all little-endian):
 *   0  periodNs u64     8  counter u64     16 checksum u64
 *   24 lastNs u64      32 maxGapNs u64    40 gapHead u32 (records written, free-running)
 *   48 gap records: { atNs u64, gapNs u64, counter u64, pad u64 } x GAP_RECORDS
 */
export const GAP_RECORDS = 128;
const HDR = 48;
const REC = 32;
export const HEARTBEAT_REGION_BYTES = HDR + GAP_RECORDS * REC;

export interface HeartbeatConfig {
  periodNs: number;
}

const MASK64 = (1n << 64n) - 1n;

/** The checksum chain: anyone can recompute it from a known (counter, checksum). */
export function nextChecksum(prev: bigint, counter: bigint): bigint {
  // splitmix64 step over prev ^ counter: cheap, and any skipped or repeated beat changes it.
  let z = (prev ^ (counter * 0x9e3779b97f4a7c15n)) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return (z ^ (z >> 31n)) & MASK64;
}

export function checksumAfter(start: bigint, startCounter: bigint, endCounter: bigint): bigint {
  let c = start;
  for (let n = startCounter + 1n; n <= endCounter; n++) c = nextChecksum(c, n);
  return c;
}

export const heartbeat: GuestModule<HeartbeatConfig> = {
  name: 'heartbeat',
  regionBytes: () => HEARTBEAT_REGION_BYTES,
  boot(ctx, base, cfg) {
    const m = ctx.mem;
    m.write64(base, BigInt(cfg.periodNs));
    m.write64(base + 8, 0n);
    m.write64(base + 16, 0n);
    m.write64(base + 24, BigInt(Math.floor(ctx.nowNs())));
    m.write64(base + 32, 0n);
    m.write32(base + 40, 0);
  },
  step(ctx, base) {
    const m = ctx.mem;
    const now = BigInt(Math.floor(ctx.nowNs()));
    const period = m.read64(base);
    const last = m.read64(base + 24);
    if (now - last < period) return Number(last + period);
    const counter = m.read64(base + 8) + 1n;
    m.write64(base + 8, counter);
    m.write64(base + 16, nextChecksum(m.read64(base + 16), counter));
    const gap = now - last;
    m.write64(base + 24, now);
    if (gap > m.read64(base + 32)) m.write64(base + 32, gap);
    if (gap > 3n * period) {
      const head = m.read32(base + 40);
      const rec = base + HDR + (head % GAP_RECORDS) * REC;
      m.write64(rec, now);
      m.write64(rec + 8, gap);
      m.write64(rec + 16, counter);
      m.write32(base + 40, head + 1);
    }
    return Number(now + period);
  },
};

export interface HeartbeatView {
  periodNs: number;
  counter: bigint;
  checksum: bigint;
  lastNs: number;
  maxGapNs: number;
  gaps: Array<{ atNs: number; gapNs: number; counter: bigint }>;
}

/** Parses a heartbeat region read out of guest RAM (by the coordinator, via memRead). */
export function parseHeartbeat(region: Uint8Array): HeartbeatView {
  const v = new DataView(region.buffer, region.byteOffset, region.byteLength);
  const head = v.getUint32(40, true);
  const gaps: HeartbeatView['gaps'] = [];
  const n = Math.min(head, GAP_RECORDS);
  for (let i = head - n; i < head; i++) {
    const o = HDR + (i % GAP_RECORDS) * REC;
    gaps.push({ atNs: Number(v.getBigUint64(o, true)), gapNs: Number(v.getBigUint64(o + 8, true)), counter: v.getBigUint64(o + 16, true) });
  }
  return {
    periodNs: Number(v.getBigUint64(0, true)),
    counter: v.getBigUint64(8, true),
    checksum: v.getBigUint64(16, true),
    lastNs: Number(v.getBigUint64(24, true)),
    maxGapNs: Number(v.getBigUint64(32, true)),
    gaps,
  };
}
