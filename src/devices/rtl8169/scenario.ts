/**
 * Test support: a guest driving the NIC through one driver personality,
 * migrated to a second node with the reconstructor, and continued there.
 * Used by the reconstructor's targeted and property tests.
 */
import type { GuestContext } from '../../sim/guest/context.js';
import type { RestoreReport } from '../io.js';
import type { RtlDriver } from './driverCommon.js';
import { createBsdReDriver } from './driverBsd.js';
import { createLinuxR8169Driver } from './driverLinux.js';
import type { RtlInternal, RtlVariant } from './model.js';
import { type RtlCaptureState, createRtl8169Reconstructor } from './reconstructor.js';
import { Mii, Phyar, Reg, TxPoll } from './registers.js';
import { GUEST_MAC, GuestCpu, NIC_MMIO, type NicNode, PEER_MAC, makeNicNode, parseTagged, taggedFrame } from './testbed.js';

export const DRIVER_BASE = 0x100000;
export type Personality = 'linux' | 'bsd';

export type Op =
  | { k: 'send'; n: number; more: boolean; len: number }
  | { k: 'flush' }
  | { k: 'peer'; n: number; bcast: boolean }
  | { k: 'irq' }
  | { k: 'step' }
  | { k: 'settle' }
  | { k: 'time'; us: number }
  | { k: 'swint' }
  /** The guest starts a PHY command through PHYAR and does not wait for it. */
  | { k: 'mdio'; write: boolean };

export interface Scenario {
  personality: Personality;
  nTx: number;
  nRx: number;
  /** Frames exchanged (and settled) before the interesting part: moves the indices around the rings. */
  warmTx: number;
  warmRx: number;
  ops: Op[];
  /** Model variant on both nodes (the unverified behaviours, flipped). */
  variant?: RtlVariant;
  /** NIC timing (reset, PHY access) on both nodes. */
  slowNs?: number;
}

/**
 * All the state comparable between two NICs: everything but time-bound and
 * statistics fields (TCTR, tally counters, operations in flight). PHYAR is
 * left out only when the restore reports it could not recreate it (the
 * guest's last PHY command was an action such as restart-autonegotiation).
 */
export function comparable(i: RtlInternal, report?: RestoreReport): unknown {
  const { tctr: _t, tally: _y, pending: _p, phy, regs, ...rest } = i;
  const { phyar, ...otherRegs } = regs;
  const keepPhyar = !report?.extra?.['phyarNotRecreated'];
  return { ...rest, regs: keepPhyar ? { ...otherRegs, phyar } : otherRegs, phy: { regs: phy.regs, linkUp: phy.linkUp, anComplete: phy.anComplete } };
}

/** A RARP frame, as the restore's announcement is. */
export function isAnnouncement(f: Uint8Array): boolean {
  return f.length >= 14 && f[12] === 0x80 && f[13] === 0x35;
}

export class World {
  readonly received: Uint8Array[] = [];
  /** Guest frames the driver accepted, in order. */
  readonly sent: number[] = [];
  /** Peer frames handed to a NIC, in order. */
  readonly peerSent: number[] = [];
  private guestSeq = 0;
  private peerSeq = 0;
  node: NicNode;
  driver: RtlDriver;
  cpu: GuestCpu;
  /** Every node the guest ran on (source first). */
  readonly nodes: NicNode[] = [];

  constructor(readonly sc: Scenario) {
    this.node = makeNicNode(this.nodeOptions());
    this.driver = this.makeDriver();
    this.driver.boot(this.node.ctx, DRIVER_BASE, { mmioBase: NIC_MMIO, txRing: sc.nTx, rxRing: sc.nRx });
    this.cpu = new GuestCpu(this.node, this.driver, DRIVER_BASE);
    this.nodes.push(this.node);
    this.cpu.settle();
  }

  private nodeOptions(): Parameters<typeof makeNicNode>[0] {
    // Just enough RAM for the driver's region (a smaller RAM is cheaper to copy and compare).
    const probe = this.sc.personality === 'linux' ? createLinuxR8169Driver({ onReceive: () => undefined }) : createBsdReDriver({ onReceive: () => undefined });
    const need = DRIVER_BASE + probe.regionBytes({ mmioBase: NIC_MMIO, txRing: this.sc.nTx, rxRing: this.sc.nRx });
    const ramBytes = Math.ceil(need / (1 << 20)) * (1 << 20);
    return { ramBytes, variant: this.sc.variant, resetNs: this.sc.slowNs, phyAccessNs: this.sc.slowNs };
  }

  private makeDriver(): RtlDriver {
    const onReceive = (_ctx: GuestContext, f: Uint8Array) => this.received.push(Uint8Array.from(f));
    return this.sc.personality === 'linux' ? createLinuxR8169Driver({ onReceive }) : createBsdReDriver({ onReceive });
  }

  send(n: number, more: boolean, len = 60): void {
    for (let i = 0; i < n; i++) {
      const seq = this.guestSeq++;
      if (this.driver.send(this.node.ctx, DRIVER_BASE, taggedFrame(PEER_MAC, GUEST_MAC, 'GST', seq, len + (seq % 7)), more)) this.sent.push(seq);
    }
  }

  peer(n: number, bcast = false): void {
    for (let i = 0; i < n; i++) {
      const seq = this.peerSeq++;
      this.peerSent.push(seq);
      this.node.nic.receiveFrame(taggedFrame(bcast ? [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] : GUEST_MAC, PEER_MAC, 'PEER', seq, 64 + (seq % 5)));
    }
  }

  warmUp(): void {
    const { warmTx, warmRx } = this.sc;
    let tx = warmTx;
    let rx = warmRx;
    while (tx > 0 || rx > 0) {
      const a = Math.min(tx, 3);
      const b = Math.min(rx, 3);
      this.send(a, false);
      this.peer(b);
      tx -= a;
      rx -= b;
      this.cpu.settle();
    }
  }

  apply(op: Op): void {
    switch (op.k) {
      case 'send':
        return this.send(op.n, op.more, op.len);
      case 'flush':
        return this.driver.flush(this.node.ctx, DRIVER_BASE);
      case 'peer':
        return this.peer(op.n, op.bcast);
      case 'irq':
        this.cpu.interruptOnce();
        return;
      case 'step':
        return this.cpu.stepOnce();
      case 'settle':
        return this.cpu.settle();
      case 'time':
        this.node.clock.advance(op.us * 1000);
        this.node.nic.advanceTo(this.node.clock.nowNs());
        return;
      case 'swint':
        this.node.ctx.io.mmioWrite(NIC_MMIO + Reg.TXPOLL, 1, TxPoll.FSWInt);
        return;
      case 'mdio':
        // A vendor register write (page select 0: harmless), or a BMSR read.
        this.node.ctx.io.mmioWrite(NIC_MMIO + Reg.PHYAR, 4, op.write ? (Phyar.Flag | (0x1f << Phyar.RegShift)) >>> 0 : Mii.BMSR << Phyar.RegShift);
        return;
    }
  }

  /**
   * Pause, final memory copy, capture on the source, restore on a fresh
   * destination (different EEPROM MAC, link already up), continue there.
   */
  async migrate(opts: { rollbackCheck?: boolean } = {}): Promise<MigrationResult> {
    const src = this.node;
    // The guest is stopped; the NIC is not: operations in flight finish and
    // timers run while the engine gets to the capture (100 µs here).
    src.clock.advance(100_000);
    src.nic.advanceTo(src.clock.nowNs());
    const before = src.nic.inspect();
    const ramAtPause = Buffer.from(src.mem.bytes);
    const dst = makeNicNode({ ...this.nodeOptions(), eepromMac: [0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc], startNs: 5_000_000_000 });
    dst.clock.advance(1_000_000);
    dst.nic.advanceTo(dst.clock.nowNs());
    dst.mem.bytes.set(src.mem.bytes); // final copy: destination RAM = source RAM at pause
    const rec = createRtl8169Reconstructor({ mmioBase: NIC_MMIO, device: 'nic0' });
    const state = await rec.capture(src.access());
    const srcRamAfterCapture = Buffer.from(src.mem.bytes);
    let afterRollback: RtlInternal | null = null;
    if (opts.rollbackCheck) {
      await rec.rollback!(src.access(), state);
      afterRollback = src.nic.inspect();
    }
    const report = await rec.restore(dst.access(), state);
    const after = dst.nic.inspect();
    const result: MigrationResult = {
      before,
      after,
      afterRollback,
      state,
      report,
      ramAtPause,
      srcRamAfterCapture,
      dstRamAfterRestore: Buffer.from(dst.mem.bytes),
      srcWireAtPause: src.wire.length,
    };
    // The guest continues on the destination: same code, same RAM.
    this.node = dst;
    this.driver = this.makeDriver();
    this.cpu = new GuestCpu(dst, this.driver, DRIVER_BASE);
    this.nodes.push(dst);
    return result;
  }

  /** After the migration: kick what is pending, exchange more frames, settle. */
  continueAfter(extraRounds = 6): void {
    this.cpu.settle();
    this.driver.flush(this.node.ctx, DRIVER_BASE);
    this.cpu.settle();
    for (let i = 0; i < extraRounds; i++) {
      this.send(2, false);
      this.peer(2);
      this.cpu.settle();
    }
    // Drain: a few more peer frames make sure every pending RX frame gets an interrupt.
    for (let i = 0; i < 4; i++) {
      this.peer(1);
      this.cpu.settle();
    }
  }

  /** Every frame that left on a wire, across all nodes, as tagged frames (the restore's announcements aside). */
  wireFrames(): Array<{ tag: string; seq: number } | null> {
    return this.nodes.flatMap((n) => n.wire.filter((f) => !isAnnouncement(f)).map((f) => parseTagged(f)));
  }

  /** For each node, where on its wire the restore's announcements (RARP) are, and the MAC each announces. */
  announcements(): Array<Array<{ at: number; mac: number[] }>> {
    return this.nodes.map((n) => n.wire.flatMap((f, at) => (isAnnouncement(f) ? [{ at, mac: Array.from(f.subarray(6, 12)) }] : [])));
  }

  receivedFrames(): Array<{ tag: string; seq: number } | null> {
    return this.received.map((f) => parseTagged(f));
  }
}

export interface MigrationResult {
  before: RtlInternal;
  after: RtlInternal;
  afterRollback: RtlInternal | null;
  state: RtlCaptureState;
  report: RestoreReport;
  ramAtPause: Buffer;
  srcRamAfterCapture: Buffer;
  dstRamAfterRestore: Buffer;
  srcWireAtPause: number;
}
