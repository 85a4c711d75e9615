/**
 * The guest's 'nic' module: the RTL8169 driver of the personality the guest
 * spec chooses — Linux r8169 habits or FreeBSD re(4) habits
 * (src/devices/rtl8169/driver*.ts) — behind one module id. The region
 * starts with which personality runs (so the same code on the destination
 * picks the same driver from RAM), the MAC the driver programs, and the
 * BAR address; the driver's own region follows at +256.
 *
 * Received frames go up to the network stack ('netApp'), whose region is
 * found in the boot block.
 *
 * Interrupts: the NIC's line is IRQ `irq` (default 11), vector 0x20 + irq
 * (the PC layout: master at 0x20, slave at 0x28). On a node with an 8259
 * pair — which the guest's 'timer' module initialises, so it comes first in
 * the spec — boot switches the line to level sensing (ELCR, as PCI INTx
 * wants), unmasks it (and the cascade), and every NIC interrupt ends with a
 * non-specific EOI to the slave (for IRQ 8–15) and the master, after the
 * driver has masked the NIC so the level is down. Without an 8259 the node
 * delivers the same vector directly.
 */
import { GuestOs } from '../os.js';
import type { GuestContext, GuestModule } from '../context.js';
import { BOOT_BLOCK_ADDR, BOOT_ENTRY_BYTES, BOOT_HEADER_BYTES, MAX_MODULES, MODULE_IDS } from '../layout.js';
import { type RtlDriver, createBsdReDriver, createLinuxR8169Driver } from '../../../devices/rtl8169/index.js';
import { PhyStatus, Reg } from '../../../devices/rtl8169/registers.js';
import { parseMac } from '../../network/mac.js';

/** Where simulated nodes put the NIC's BAR (a typical PCI MMIO hole address). */
export const DEFAULT_NIC_MMIO = 0xfeb0_0000;

export type NicPersonality = 'linux' | 'bsd';

export interface NicModuleConfig {
  personality: NicPersonality;
  /** The guest's MAC address ("52:54:00:12:34:56" or bytes): it moves with the guest. */
  mac: string | number[];
  mmioBase?: number;
  txRing?: number;
  rxRing?: number;
  promisc?: boolean;
  multicast?: Array<string | number[]>;
  /** The NIC's interrupt line (PCI INTx routed to IRQ 11 by default). */
  irq?: number;
}

const MAGIC = 0x3043_494e; // "NIC0"
const F_MAGIC = 0;
const F_PERSONALITY = 4;
const F_MMIO = 8;
const F_MAC = 12;
const F_VECTOR = 20;
const F_PIC = 24;
const DRIVER_OFF = 256;
const PERSONALITIES: NicPersonality[] = ['linux', 'bsd'];

export function macOf(m: string | ArrayLike<number>): number[] {
  const b = typeof m === 'string' ? parseMac(m) : Array.from(m);
  if (b.length !== 6 || b.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new RangeError('MAC address must be 6 bytes');
  if (b[0]! & 1) throw new RangeError(`${typeof m === 'string' ? m : b.join(',')} is a group address, not a NIC's`);
  return b;
}

/** Base of a module's region, read from the boot block in RAM (no copy); -1 when the guest has none. */
export function moduleBase(ctx: GuestContext, id: number): number {
  const m = ctx.mem;
  const n = Math.min(m.read32(BOOT_BLOCK_ADDR + 8), MAX_MODULES);
  for (let i = 0; i < n; i++) {
    const a = BOOT_BLOCK_ADDR + BOOT_HEADER_BYTES + i * BOOT_ENTRY_BYTES;
    if (m.read32(a) === id) return m.read32(a + 8);
  }
  return -1;
}

export type FrameHandler = (ctx: GuestContext, stackBase: number, frame: Uint8Array) => void;

/** What the network stack uses of the NIC module. */
export interface NicApi {
  /** Queues a frame; false when the TX ring is full (the frame is not sent). */
  send(ctx: GuestContext, nicBase: number, frame: Uint8Array): boolean;
  /** Carrier, as the PHY status register shows it. */
  linkUp(ctx: GuestContext, nicBase: number): boolean;
  mac(ctx: GuestContext, nicBase: number): number[];
}

export function createNicModule(up: FrameHandler): { module: GuestModule<NicModuleConfig>; api: NicApi; drivers: Record<NicPersonality, RtlDriver> } {
  const deliver = (ctx: GuestContext, frame: Uint8Array) => {
    const stack = moduleBase(ctx, MODULE_IDS.netApp);
    if (stack >= 0) up(ctx, stack, frame);
  };
  const drivers: Record<NicPersonality, RtlDriver> = {
    linux: createLinuxR8169Driver({ onReceive: deliver }),
    bsd: createBsdReDriver({ onReceive: deliver }),
  };
  const driverOf = (ctx: GuestContext, base: number): RtlDriver => {
    if (ctx.mem.read32(base + F_MAGIC) !== MAGIC) throw new Error(`nic: no booted NIC module at 0x${base.toString(16)}`);
    const p = PERSONALITIES[ctx.mem.read32(base + F_PERSONALITY)];
    if (!p) throw new Error('nic: unknown driver personality in RAM');
    return drivers[p];
  };
  const driverConfig = (cfg: NicModuleConfig) => ({
    mmioBase: cfg.mmioBase ?? DEFAULT_NIC_MMIO,
    mac: macOf(cfg.mac),
    txRing: cfg.txRing,
    rxRing: cfg.rxRing,
    promisc: cfg.promisc,
    multicast: cfg.multicast?.map((g) => (typeof g === 'string' ? parseMac(g) : g)),
  });
  const pick = (cfg: NicModuleConfig): RtlDriver => {
    const d = drivers[cfg.personality];
    if (!d) throw new RangeError(`nic personality must be one of ${PERSONALITIES.join(', ')}, got ${String(cfg.personality)}`);
    return d;
  };

  const module: GuestModule<NicModuleConfig> = {
    name: 'nic',
    regionBytes: (cfg) => DRIVER_OFF + pick(cfg).regionBytes(driverConfig(cfg)),
    boot(ctx, base, cfg) {
      const d = pick(cfg);
      const dc = driverConfig(cfg);
      const m = ctx.mem;
      m.fill(base, DRIVER_OFF, 0);
      m.write32(base + F_MAGIC, MAGIC);
      m.write32(base + F_PERSONALITY, PERSONALITIES.indexOf(cfg.personality));
      m.write32(base + F_MMIO, dc.mmioBase);
      m.writeBytes(base + F_MAC, Uint8Array.from(dc.mac));
      const irq = cfg.irq ?? 11;
      if (!Number.isInteger(irq) || irq < 1 || irq > 15 || irq === 2) throw new RangeError(`NIC irq must be 1..15 but not the cascade (2), got ${irq}`);
      m.write32(base + F_VECTOR, 0x20 + irq);
      // An initialised 8259 pair shows the guest's mask; a node without one reads all ones.
      const io = ctx.io;
      const pic = io.in(0x21, 1) !== 0xff;
      m.write32(base + F_PIC, pic ? irq : 0);
      if (pic) {
        const elcr = irq < 8 ? 0x4d0 : 0x4d1;
        io.out(elcr, 1, io.in(elcr, 1) | (1 << (irq & 7)));
        if (irq < 8) io.out(0x21, 1, io.in(0x21, 1) & ~(1 << irq));
        else {
          io.out(0xa1, 1, io.in(0xa1, 1) & ~(1 << (irq - 8)));
          io.out(0x21, 1, io.in(0x21, 1) & ~0x04);
        }
      }
      d.boot(ctx, base + DRIVER_OFF, dc);
    },
    step: (ctx, base) => driverOf(ctx, base).step(ctx, base + DRIVER_OFF),
    interrupt(ctx, base, vector) {
      if (vector !== ctx.mem.read32(base + F_VECTOR)) return false;
      driverOf(ctx, base).interrupt(ctx, base + DRIVER_OFF, vector);
      const picIrq = ctx.mem.read32(base + F_PIC);
      if (picIrq >= 8) ctx.io.out(0xa0, 1, 0x20);
      if (picIrq) ctx.io.out(0x20, 1, 0x20);
      return true; // the driver's deferred work (NAPI poll / re task) runs now
    },
  };

  const api: NicApi = {
    send: (ctx, base, frame) => driverOf(ctx, base).send(ctx, base + DRIVER_OFF, frame),
    linkUp: (ctx, base) => (ctx.io.mmioRead(ctx.mem.read32(base + F_MMIO) + Reg.PHYSTATUS, 1) & PhyStatus.LinkSts) !== 0,
    mac: (ctx, base) => Array.from(ctx.mem.readBytes(base + F_MAC, 6)),
  };
  return { module, api, drivers };
}

/** Driver statistics of a booted NIC module (tests and tools). */
export function nicDriverStats(ctx: GuestContext, drivers: Record<NicPersonality, RtlDriver>): ReturnType<RtlDriver['stats']> | null {
  const base = moduleBase(ctx, MODULE_IDS.nic);
  if (base < 0 || !GuestOs.isBooted(ctx)) return null;
  const p = PERSONALITIES[ctx.mem.read32(base + F_PERSONALITY)];
  return p ? drivers[p].stats(ctx, base + DRIVER_OFF) : null;
}
