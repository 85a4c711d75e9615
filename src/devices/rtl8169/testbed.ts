/**
 * Test support (not used by the simulator): one node's worth of NIC — a
 * manual clock, guest RAM, a bus with the RTL8169 on it, guest I/O whose
 * MMIO writes to the NIC feed the shadow reducer (as the hypervisor's traps
 * would), and an IoTarget for running reconstructor programs locally.
 */
import type { AccessSize, DeviceAccess } from '../io.js';
import { DeviceBus } from '../../sim/bus.js';
import { ManualClock } from '../../sim/clock.js';
import type { GuestContext } from '../../sim/guest/context.js';
import { GuestMemory } from '../../sim/guestMemory.js';
import { type IoTarget, localAccess } from '../../sim/ioProgram.js';
import type { RtlDriver } from './driverCommon.js';
import { type LinkPartner, Rtl8169, type RtlVariant } from './model.js';
import { RTL_BAR_SIZE } from './registers.js';
import { RTL_SHADOW_KEY, type RtlShadow, initialRtlShadow, reduceRtlShadow } from './shadow.js';

export const NIC_MMIO = 0xfeb0_0000;
export const GUEST_MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
export const PEER_MAC = [0x02, 0x00, 0x00, 0x00, 0x00, 0x99];

export interface NicNode {
  clock: ManualClock;
  mem: GuestMemory;
  bus: DeviceBus;
  nic: Rtl8169;
  irq: { level: boolean; edges: number };
  /** Frames that left on the wire. */
  wire: Uint8Array[];
  shadow: { value: RtlShadow };
  ctx: GuestContext;
  target: IoTarget;
  access(): DeviceAccess & { programs: number };
}

export interface NodeOptions {
  ramBytes?: number;
  eepromMac?: number[];
  autonegNs?: number;
  partner?: LinkPartner | null;
  phyAccessNs?: number;
  resetNs?: number;
  startNs?: number;
  variant?: RtlVariant;
}

export function makeNicNode(o: NodeOptions = {}): NicNode {
  const clock = new ManualClock(o.startNs ?? 0);
  const mem = new GuestMemory(o.ramBytes ?? 8 * 1024 * 1024);
  const bus = new DeviceBus();
  const irq = { level: false, edges: 0 };
  const wire: Uint8Array[] = [];
  const nic = new Rtl8169({
    name: 'nic0',
    mmioBase: NIC_MMIO,
    mem,
    clock,
    irq: (l) => {
      if (l && !irq.level) irq.edges++;
      irq.level = l;
    },
    mac: o.eepromMac ?? GUEST_MAC,
    transmit: (f) => wire.push(Uint8Array.from(f)),
    autonegNs: o.autonegNs ?? 100_000,
    partner: o.partner,
    phyAccessNs: o.phyAccessNs,
    resetNs: o.resetNs,
    variant: o.variant,
  });
  bus.attach(nic);
  const shadow = { value: initialRtlShadow() };
  const inBar = (addr: number) => addr >= NIC_MMIO && addr < NIC_MMIO + RTL_BAR_SIZE;
  const ctx: GuestContext = {
    mem,
    nowNs: () => clock.nowNs(),
    io: {
      in: (port: number, size: AccessSize) => bus.in(port, size),
      out: (port: number, size: AccessSize, value: number) => bus.out(port, size, value),
      mmioRead: (addr: number, size: AccessSize) => {
        const v = bus.mmioRead(addr, size);
        if (inBar(addr)) shadow.value = reduceRtlShadow(shadow.value, { kind: 'mmioRead', offset: addr - NIC_MMIO, size, value: v });
        return v;
      },
      mmioWrite: (addr: number, size: AccessSize, value: number) => {
        bus.mmioWrite(addr, size, value);
        if (inBar(addr)) shadow.value = reduceRtlShadow(shadow.value, { kind: 'mmioWrite', offset: addr - NIC_MMIO, size, value });
      },
    },
  };
  const target: IoTarget = {
    bus,
    mem,
    delay: async (us) => clock.advance(Math.max(0, us) * 1000),
    advance: () => nic.advanceTo(clock.nowNs()),
    injectFrame: (_dev, f) => nic.receiveFrame(f),
    nowUs: () => clock.nowNs() / 1000,
  };
  return {
    clock,
    mem,
    bus,
    nic,
    irq,
    wire,
    shadow,
    ctx,
    target,
    access: () => localAccess(target, () => ({ [RTL_SHADOW_KEY]: JSON.parse(JSON.stringify(shadow.value)) })),
  };
}

/**
 * The guest's CPU for one driver: delivers the NIC interrupt while the line
 * is asserted and runs the driver's step when it asked to run.
 */
export class GuestCpu {
  private wakeAt = 0;
  constructor(
    readonly node: NicNode,
    readonly driver: RtlDriver,
    readonly base: number,
  ) {}

  /** One interrupt delivery, if the line is up. */
  interruptOnce(): boolean {
    if (!this.node.irq.level) return false;
    this.driver.interrupt(this.node.ctx, this.base, 0x2b);
    this.wakeAt = this.node.clock.nowNs();
    return true;
  }

  stepOnce(): void {
    this.wakeAt = this.driver.step(this.node.ctx, this.base);
  }

  /** Runs interrupts and due steps until nothing is due now. */
  run(limit = 10_000): void {
    for (let i = 0; i < limit; i++) {
      if (this.interruptOnce()) continue;
      if (this.wakeAt <= this.node.clock.nowNs()) {
        this.stepOnce();
        continue;
      }
      return;
    }
    throw new Error('guest CPU did not settle');
  }

  /** Runs and lets device time pass (up to `horizonNs` per event) until quiet. */
  settle(horizonNs = 2_000_000, limit = 1000): void {
    for (let i = 0; i < limit; i++) {
      this.run();
      const now = this.node.clock.nowNs();
      const e = this.node.nic.nextEventNs();
      const next = Math.min(e ?? Infinity, this.wakeAt);
      if (next <= now) continue;
      if (next - now > horizonNs) return;
      this.node.clock.set(next);
      this.node.nic.advanceTo(next);
    }
  }
}

const enc = new TextEncoder();

/** A test frame with a tag ("GST" from the guest, "PEER" from the peer) and a sequence number. */
export function taggedFrame(dst: ArrayLike<number>, src: ArrayLike<number>, tag: string, seq: number, len: number): Uint8Array {
  const f = new Uint8Array(Math.max(len, 24));
  f.set(Array.from(dst), 0);
  f.set(Array.from(src), 6);
  f[12] = 0x88;
  f[13] = 0xb6;
  f.set(enc.encode(tag.padEnd(4, ' ')), 14);
  new DataView(f.buffer).setUint32(18, seq, true);
  for (let i = 22; i < f.length; i++) f[i] = (seq * 31 + i) & 0xff;
  return f;
}

/** Tag and sequence number of a tagged frame, or null. */
export function parseTagged(f: Uint8Array): { tag: string; seq: number } | null {
  if (f.length < 22 || f[12] !== 0x88 || f[13] !== 0xb6) return null;
  const tag = new TextDecoder().decode(f.subarray(14, 18)).trim();
  const seq = new DataView(f.buffer, f.byteOffset, f.byteLength).getUint32(18, true);
  for (let i = 22; i < f.length; i++) if (f[i] !== ((seq * 31 + i) & 0xff)) return null;
  return { tag, seq };
}
