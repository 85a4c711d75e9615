import type { GuestContext, GuestModule } from './context.js';

/**
 * The guest OS's timer tick, as a PC kernel of the i8253 era does it:
 * program both 8259s (vectors 0x20/0x28, slave on IR2), unmask IRQ0, run
 * 8254 counter 0 in mode 2 at HZ, count ticks in RAM and acknowledge each
 * with a non-specific EOI. Like Linux's old lost-tick compensation, a tick
 * that arrives more than 1.5 periods after the previous one adds the ticks
 * that could not be delivered (the guest clock ran on while no interrupt
 * could come: a migration pause) — so jiffies follow elapsed time, while
 * `delivered` counts only interrupts that really arrived.
 *
 * Region: 0 hz u32, 4 vector u32, 8 jiffies u64, 16 delivered u64,
 * 24 lastTickNs u64, 32 lostTicks u64, 40 bootNs u64, 48 spurious u64,
 * 56 minGapNs u64 (shortest gap between two delivered ticks: a doubled tick shows here).
 */
export interface TimerConfig {
  hz: number;
}

export const PIT_HZ = 1_193_182;
export const TIMER_VECTOR = 0x20;
export const TIMER_REGION_BYTES = 64;

export const timer: GuestModule<TimerConfig> = {
  name: 'timer',
  regionBytes: () => TIMER_REGION_BYTES,
  boot(ctx, base, cfg) {
    const io = ctx.io;
    // 8259 pair: ICW1 edge+cascade+ICW4, ICW2 vector base, ICW3 wiring, ICW4 8086 mode.
    io.out(0x20, 1, 0x11);
    io.out(0x21, 1, TIMER_VECTOR);
    io.out(0x21, 1, 0x04);
    io.out(0x21, 1, 0x01);
    io.out(0xa0, 1, 0x11);
    io.out(0xa1, 1, TIMER_VECTOR + 8);
    io.out(0xa1, 1, 0x02);
    io.out(0xa1, 1, 0x01);
    io.out(0x21, 1, 0xfa); // unmask IRQ0 and the cascade
    io.out(0xa1, 1, 0xff);
    if (io.in(0x21, 1) !== 0xfa) throw new Error('guest module timer needs an 8259 interrupt controller');
    // 8254 counter 0: LSB then MSB, mode 2 (rate generator), binary.
    const divisor = Math.max(2, Math.min(65536, Math.round(PIT_HZ / cfg.hz))) & 0xffff;
    io.out(0x43, 1, 0x34);
    io.out(0x40, 1, divisor & 0xff);
    io.out(0x40, 1, divisor >> 8);
    const m = ctx.mem;
    const now = BigInt(Math.floor(ctx.nowNs()));
    m.write32(base, cfg.hz);
    m.write32(base + 4, TIMER_VECTOR);
    m.write64(base + 8, 0n);
    m.write64(base + 16, 0n);
    m.write64(base + 24, now);
    m.write64(base + 32, 0n);
    m.write64(base + 40, now);
    m.write64(base + 48, 0n);
    m.write64(base + 56, (1n << 63n) - 1n);
  },
  step(ctx) {
    return ctx.nowNs() + 1e9; // interrupt driven
  },
  interrupt(ctx, base, vector) {
    const m = ctx.mem;
    const v0 = m.read32(base + 4);
    if (vector === v0 + 7) {
      // Spurious IRQ7 (the request went away before the acknowledge): no EOI.
      m.write64(base + 48, m.read64(base + 48) + 1n);
      return;
    }
    if (vector !== v0) return;
    const now = BigInt(Math.floor(ctx.nowNs()));
    const hz = BigInt(m.read32(base));
    const periodNs = 1_000_000_000n / hz;
    const last = m.read64(base + 24);
    const gap = now - last;
    let add = 1n;
    if (gap * 2n > periodNs * 3n) {
      const lost = gap / periodNs - 1n;
      add += lost;
      m.write64(base + 32, m.read64(base + 32) + lost);
    }
    m.write64(base + 8, m.read64(base + 8) + add);
    m.write64(base + 16, m.read64(base + 16) + 1n);
    if (gap < m.read64(base + 56)) m.write64(base + 56, gap);
    m.write64(base + 24, now);
    ctx.io.out(0x20, 1, 0x20); // non-specific EOI
  },
};

export interface TimerView {
  hz: number;
  jiffies: bigint;
  delivered: bigint;
  lastTickNs: number;
  lostTicks: bigint;
  bootNs: number;
  spurious: bigint;
  minGapNs: number;
}

export function parseTimer(region: Uint8Array): TimerView {
  const v = new DataView(region.buffer, region.byteOffset, region.byteLength);
  return {
    hz: v.getUint32(0, true),
    jiffies: v.getBigUint64(8, true),
    delivered: v.getBigUint64(16, true),
    lastTickNs: Number(v.getBigUint64(24, true)),
    lostTicks: v.getBigUint64(32, true),
    bootNs: Number(v.getBigUint64(40, true)),
    spurious: v.getBigUint64(48, true),
    minGapNs: Number(v.getBigUint64(56, true)),
  };
}
