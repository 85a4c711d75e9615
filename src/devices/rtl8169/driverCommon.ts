/**
 * What the two guest driver personalities (driverLinux.ts, driverBsd.ts)
 * really share: register access through the guest's MMIO, the PHYAR (MDIO)
 * protocol, the chip reset handshake, the multicast hash filter, and the
 * layout of their RAM region (header, rings, buffers).
 *
 * Guest code is stateless (DESIGN rule 1): every index, counter and address
 * lives in the module's region of guest RAM, written at boot and read back
 * on every call, so the same code continues on the destination.
 */
import type { GuestContext, GuestModule } from '../../sim/guest/context.js';
import { ChipCmd, Desc, Mii, Phyar, RING_ALIGN, Reg, multicastHashBit } from './registers.js';

export interface RtlDriverConfig {
  /** BAR1 guest-physical address of the NIC. */
  mmioBase: number;
  /** Ring sizes (any 1..1024, power of two or not); personality defaults when absent. */
  txRing?: number;
  rxRing?: number;
  /** A MAC address to program into IDR (else the EEPROM's stays). */
  mac?: ArrayLike<number>;
  /** Multicast groups to accept through the hash filter. */
  multicast?: Array<ArrayLike<number>>;
  promisc?: boolean;
}

export type ReceiveCallback = (ctx: GuestContext, frame: Uint8Array) => void;

export interface RtlDriverStats {
  txPackets: number;
  rxPackets: number;
  rxErrors: number;
  interrupts: number;
}

/** A NIC driver as a guest module, with the calls the network stack makes. */
export interface RtlDriver extends GuestModule<RtlDriverConfig> {
  /** Queues a frame on the TX ring; false when the ring (queue) is full. `more`: more frames follow, hold the doorbell. */
  send(ctx: GuestContext, base: number, frame: Uint8Array, more?: boolean): boolean;
  /** Rings the doorbell for frames queued with `more`. */
  flush(ctx: GuestContext, base: number): void;
  interrupt(ctx: GuestContext, base: number, vector: number): void;
  stats(ctx: GuestContext, base: number): RtlDriverStats;
  /** Where the rings are (for tests and tools; read from the region). */
  rings(ctx: GuestContext, base: number): { txRing: number; rxRing: number; nTx: number; nRx: number };
}

// ---------------------------------------------------------------------------
// Region header shared by both personalities (u32 little-endian fields).

export const H = {
  MAGIC: 0,
  MMIO: 4,
  NTX: 8,
  NRX: 12,
  TXRING: 16,
  RXRING: 20,
  TXBUFS: 24,
  RXBUFS: 28,
  TXBUFSZ: 32,
  RXBUFSZ: 36,
  COUNTERS: 40,
  /** Personality-specific fields start here. */
  PRIVATE: 64,
} as const;
export const HEADER_BYTES = 256;

export interface RegionPlan {
  txRing: number;
  rxRing: number;
  txBufs: number;
  rxBufs: number;
  counters: number;
  end: number;
}

/** Rings 256-byte aligned [reference], buffers after them, a 64-byte aligned tally area. */
export function planRegion(base: number, nTx: number, nRx: number, txBufSize: number, rxBufSize: number): RegionPlan {
  const align = (a: number, n: number) => Math.ceil(a / n) * n;
  const txRing = align(base + HEADER_BYTES, RING_ALIGN);
  const rxRing = align(txRing + nTx * Desc.BYTES, RING_ALIGN);
  const counters = align(rxRing + nRx * Desc.BYTES, 64);
  const txBufs = align(counters + 64, 64);
  const rxBufs = align(txBufs + nTx * txBufSize, 64);
  return { txRing, rxRing, txBufs, rxBufs, counters, end: rxBufs + nRx * rxBufSize };
}

export function regionBytesFor(nTx: number, nRx: number, txBufSize: number, rxBufSize: number): number {
  // Worst case: base aligned to 4 bytes only.
  return planRegion(0, nTx, nRx, txBufSize, rxBufSize).end + RING_ALIGN;
}

export function checkRingSize(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw new RangeError(`${what} ring size must be 1..1024, got ${n}`);
  return n;
}

export function writeHeader(ctx: GuestContext, base: number, magic: number, mmio: number, nTx: number, nRx: number, p: RegionPlan, txBufSize: number, rxBufSize: number): void {
  const m = ctx.mem;
  m.fill(base, HEADER_BYTES, 0);
  m.write32(base + H.MAGIC, magic);
  m.write32(base + H.MMIO, mmio);
  m.write32(base + H.NTX, nTx);
  m.write32(base + H.NRX, nRx);
  m.write32(base + H.TXRING, p.txRing);
  m.write32(base + H.RXRING, p.rxRing);
  m.write32(base + H.TXBUFS, p.txBufs);
  m.write32(base + H.RXBUFS, p.rxBufs);
  m.write32(base + H.TXBUFSZ, txBufSize);
  m.write32(base + H.RXBUFSZ, rxBufSize);
  m.write32(base + H.COUNTERS, p.counters);
}

export function checkMagic(ctx: GuestContext, base: number, magic: number, who: string): void {
  if (ctx.mem.read32(base + H.MAGIC) !== magic) throw new Error(`${who}: no booted driver state at 0x${base.toString(16)}`);
}

export function ringsOf(ctx: GuestContext, base: number): { txRing: number; rxRing: number; nTx: number; nRx: number } {
  const m = ctx.mem;
  return { txRing: m.read32(base + H.TXRING), rxRing: m.read32(base + H.RXRING), nTx: m.read32(base + H.NTX), nRx: m.read32(base + H.NRX) };
}

// ---------------------------------------------------------------------------
// Register access through the guest's own MMIO (passes the hypervisor's traps).

export class Regs {
  constructor(
    private readonly ctx: GuestContext,
    readonly mmio: number,
  ) {}
  static of(ctx: GuestContext, base: number): Regs {
    return new Regs(ctx, ctx.mem.read32(base + H.MMIO));
  }
  r8(o: number): number {
    return this.ctx.io.mmioRead(this.mmio + o, 1);
  }
  r16(o: number): number {
    return this.ctx.io.mmioRead(this.mmio + o, 2);
  }
  r32(o: number): number {
    return this.ctx.io.mmioRead(this.mmio + o, 4) >>> 0;
  }
  w8(o: number, v: number): void {
    this.ctx.io.mmioWrite(this.mmio + o, 1, v & 0xff);
  }
  w16(o: number, v: number): void {
    this.ctx.io.mmioWrite(this.mmio + o, 2, v & 0xffff);
  }
  w32(o: number, v: number): void {
    this.ctx.io.mmioWrite(this.mmio + o, 4, v >>> 0);
  }
}

/** Bounded register poll: guest code cannot sleep inside a step, so it spins a fixed number of reads. */
export const POLL_LIMIT = 1000;

/** MDIO write through PHYAR: Flag = 1 starts it, the chip clears Flag when done [reference, LNX r8169_mdio_write]. */
export function mdioWrite(r: Regs, reg: number, value: number): boolean {
  r.w32(Reg.PHYAR, Phyar.Flag | ((reg & Phyar.RegMask) << Phyar.RegShift) | (value & Phyar.DataMask));
  for (let i = 0; i < POLL_LIMIT; i++) if (!(r.r32(Reg.PHYAR) & Phyar.Flag)) return true;
  return false;
}

/** MDIO read: Flag = 0 starts it, the chip sets Flag when the data is valid; -1 on timeout. */
export function mdioRead(r: Regs, reg: number): number {
  r.w32(Reg.PHYAR, (reg & Phyar.RegMask) << Phyar.RegShift);
  for (let i = 0; i < POLL_LIMIT; i++) {
    const v = r.r32(Reg.PHYAR);
    if (v & Phyar.Flag) return v & Phyar.DataMask;
  }
  return -1;
}

/** CmdReset and wait for the self-clearing bit [LNX rtl_hw_reset, FBSD re_reset]. */
export function chipReset(r: Regs): boolean {
  r.w8(Reg.CHIPCMD, ChipCmd.Reset);
  for (let i = 0; i < POLL_LIMIT; i++) if (!(r.r8(Reg.CHIPCMD) & ChipCmd.Reset)) return true;
  return false;
}

/** MAR0–7 image for a list of groups: bit crc >> 26 [LNX rtl_set_rx_mode, FBSD re_set_rxmode]. */
export function multicastFilter(groups: Array<ArrayLike<number>> | undefined): [number, number] {
  const f: [number, number] = [0, 0];
  for (const g of groups ?? []) {
    const bit = multicastHashBit(Uint8Array.from(g));
    f[bit >> 5] = (f[bit >> 5]! | (1 << (bit & 31))) >>> 0;
  }
  return f;
}

/** Writes a whole 16-byte descriptor: opts1, opts2, buffer address (lo, hi = 0). */
export function writeDesc(ctx: GuestContext, at: number, opts1: number, opts2: number, addr: number): void {
  const m = ctx.mem;
  m.write32(at + 4, opts2);
  m.write32(at + 8, addr);
  m.write32(at + 12, 0);
  m.write32(at, opts1 >>> 0);
}

export function macBytes(mac: ArrayLike<number>): Uint8Array {
  if (mac.length !== 6) throw new RangeError('MAC address must be 6 bytes');
  return Uint8Array.from(mac);
}

export { Mii };
