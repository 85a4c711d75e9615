import { createCipheriv, createHash } from 'node:crypto';
import type { GuestContext, GuestModule } from './context.js';

/**
 * A memory-dirtying load: dirties `dirtyRate` bytes per second of guest time,
 * a page at a time, at pseudo-random pages of its working set. The PRNG state,
 * the byte budget and the last run time live in the module's RAM region.
 *
 * Region: 0 seed/prng u32, 4 pages u32, 8 rate (bytes/s) f64, 16 lastNs u64,
 * 24 budget f64, 32 pagesDirtied u64; the working set starts at +4096.
 */
export interface MemoryLoadConfig {
  workingSetBytes: number;
  dirtyRateBytesPerSec: number;
  seed: number;
  /** Initial content of the working set: zeros, pseudo-random, or 1 MiB random / 1 MiB zero alternating. */
  fill: 'zero' | 'random' | 'halfRandom';
  stepNs?: number;
}

const HDR = 4096;
const STEP_NS = 1_000_000;
/** After a long pause (a migration), do not dirty more than this many ms worth at once. */
const MAX_CATCHUP_NS = 10_000_000;

export function memoryLoadWorkingSetAddr(base: number): number {
  return base + HDR;
}

/** Deterministic pseudo-random bytes (AES-128-CTR keystream of a seed): GB/s, reproducible runs. */
export function seededRandomFill(seed: number, out: Uint8Array, streamOffset = 0): void {
  const key = createHash('sha256').update(`baremig-fill-${seed}`).digest().subarray(0, 16);
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(Math.floor(streamOffset / 16 / 0x100000000), 8);
  iv.writeUInt32BE((streamOffset / 16) >>> 0, 12);
  const c = createCipheriv('aes-128-ctr', key, iv);
  const zero = Buffer.alloc(Math.min(out.length, 1 << 20));
  let off = 0;
  while (off < out.length) {
    const n = Math.min(zero.length, out.length - off);
    const ks = c.update(zero.subarray(0, n));
    out.set(ks, off);
    off += n;
  }
}

export const memoryLoad: GuestModule<MemoryLoadConfig> = {
  name: 'memoryLoad',
  regionBytes: (cfg) => HDR + Math.ceil(cfg.workingSetBytes / 4096) * 4096,
  boot(ctx, base, cfg) {
    const m = ctx.mem;
    const pages = Math.ceil(cfg.workingSetBytes / 4096);
    m.write32(base, (cfg.seed >>> 0) || 0x9e3779b9);
    m.write32(base + 4, pages);
    const rate = Buffer.alloc(8);
    rate.writeDoubleLE(cfg.dirtyRateBytesPerSec);
    m.writeBytes(base + 8, rate);
    m.write64(base + 16, BigInt(Math.floor(ctx.nowNs())));
    m.writeBytes(base + 24, Buffer.alloc(8));
    m.write64(base + 32, 0n);
    const ws = base + HDR;
    const MiB = 1 << 20;
    if (cfg.fill === 'zero') return;
    const chunk = Buffer.alloc(MiB);
    for (let off = 0, i = 0; off < pages * 4096; off += MiB, i++) {
      const n = Math.min(MiB, pages * 4096 - off);
      if (cfg.fill === 'halfRandom' && i % 2 === 1) continue; // zero chunk: RAM is already zero
      seededRandomFill(cfg.seed, chunk.subarray(0, n), off);
      m.writeBytes(ws + off, chunk.subarray(0, n));
    }
  },
  step(ctx, base) {
    const m = ctx.mem;
    const now = Math.floor(ctx.nowNs());
    const last = Number(m.read64(base + 16));
    const rate = m.view8(base + 8, 8).readDoubleLE(0);
    const pages = m.read32(base + 4);
    if (rate <= 0 || pages === 0) {
      m.write64(base + 16, BigInt(now));
      return now + 1_000_000_000;
    }
    const dt = Math.min(Math.max(0, now - last), MAX_CATCHUP_NS);
    let budget = m.view8(base + 24, 8).readDoubleLE(0) + (rate * dt) / 1e9;
    let x = m.read32(base);
    const ws = base + HDR;
    let n = 0;
    while (budget >= 4096) {
      // xorshift32: the PRNG state lives in RAM, so the sequence continues across a migration.
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      const page = x % pages;
      const off = ws + page * 4096 + ((x >>> 8) & 0xff8);
      m.write32(off, x);
      m.write32(off + 4, n);
      budget -= 4096;
      n++;
    }
    m.write32(base, x);
    const b = Buffer.alloc(8);
    b.writeDoubleLE(budget);
    m.writeBytes(base + 24, b);
    m.write64(base + 16, BigInt(now));
    m.write64(base + 32, m.read64(base + 32) + BigInt(n));
    return now + STEP_NS;
  },
};
