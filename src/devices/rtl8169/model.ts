/**
 * Register-level model of the RTL8169S gigabit NIC (MAC, descriptor DMA and
 * its internal PHY), for the simulator and as the oracle of the
 * reconstructor tests.
 *
 * The model follows /work/shared/reference/rtl8169.md. Where the reference
 * marks a behaviour unverified, the model picks one and says so in a comment
 * starting with "CHOICE"; the reconstructor (reconstructor.ts) is written so
 * that it does not depend on any of those choices.
 *
 * DMA is synchronous: a TxPoll write walks the TX ring and transmits before
 * the write returns, an incoming frame is written to guest memory before
 * receiveFrame() returns. A real NIC does this within microseconds; the
 * simulated guest cannot observe the difference, and it keeps the hidden
 * state to exactly the ring indices (no "frame half in the FIFO" state).
 * All DMA goes through GuestMemory, so it marks pages dirty the way the
 * hypervisor's IOMMU dirty tracking does.
 */
import type { AccessSize, DeviceModel } from '../io.js';
import type { IrqLine, TimedDevice } from '../irq.js';
import type { BusDevice } from '../../sim/bus.js';
import type { Clock } from '../../sim/clock.js';
import type { GuestMemory } from '../../sim/guestMemory.js';
import {
  Anar,
  Bmcr,
  Bmsr,
  ChipCmd,
  Cfg9346,
  Desc,
  Dtccr,
  ETH_FCS_LEN,
  ETH_ZLEN,
  Gbcr,
  Gbsr,
  INTR_IMPLEMENTED,
  Intr,
  MAX_FRAME,
  MAX_RING_DESCRIPTORS,
  Mii,
  Phyar,
  RTL_BAR_SIZE,
  Reg,
  RxCfg,
  TxCfg,
  TxPoll,
  type Tally,
  emptyTally,
  encodeTally,
  ethernetFcs,
  isBroadcast,
  isMulticast,
  multicastHashBit,
  type MiiLinkMode,
  negotiateMii,
  phyStatusFor,
} from './registers.js';

/** TCTR period. CHOICE: the 8139 datasheet counts TCTR at the PCI clock; we use 33.3 MHz (30 ns) for the PCI 8169S. */
export const TCTR_TICK_NS = 30;
const TWO32 = 2 ** 32;

/** What the cable's other end advertises during autonegotiation. */
export interface LinkPartner {
  /** Its ANAR as our ANLPAR shows it. */
  anlpar: number;
  /** Its 1000BASE-T abilities as our GBSR shows them (LP1000FD/HD bits). */
  gbsr: number;
}

/** A gigabit switch port with pause: 10/100/1000 half and full duplex. */
export const DEFAULT_PARTNER: LinkPartner = {
  anlpar: Anar.Ack | Anar.Pause | Anar.A100FD | Anar.A100HD | Anar.A10FD | Anar.A10HD | 0x0001,
  gbsr: Gbsr.LP1000FD | Gbsr.LP1000HD,
};

export interface Rtl8169Options {
  name: string;
  mmioBase: number;
  mem: GuestMemory;
  clock: Clock;
  irq: IrqLine;
  /** MAC address in the EEPROM, loaded into IDR0–5 at power-on. */
  mac: ArrayLike<number>;
  /** A frame leaves on the wire (not called in MAC loopback). */
  transmit: (frame: Uint8Array) => void;
  /** Time from (re)starting autonegotiation to link up; ~1.5 s on real hardware. */
  autonegNs?: number;
  /** The link partner; null = no cable. */
  partner?: LinkPartner | null;
  /** Time a PHYAR command takes (the reference allows 20 µs between commands). 0 = done at once. */
  phyAccessNs?: number;
  /** Time the CmdReset bit stays set. 0 = cleared when next read. */
  resetNs?: number;
  /**
   * The other side of each CHOICE where the reference says "unverified", so
   * tests can show the reconstructor does not depend on it. Default: all off.
   */
  variant?: RtlVariant;
}

export interface RtlVariant {
  /** QEMU's C+ model: a ChipCmd write with TxEnb / RxEnb zeroes that index. */
  enableZeroesIndex?: boolean;
  /** CmdReset clears TNPDS, THPDS and RDSAR. */
  resetClearsRingBases?: boolean;
  /** Writing a ring base (low dword) zeroes that ring's index. */
  ringBaseWriteZeroesIndex?: boolean;
}

/** Everything inside the NIC, hidden state included: for test oracles only (DESIGN rule 2). */
export interface RtlInternal {
  regs: {
    idr: number[];
    mar: number[];
    dtccr: [number, number];
    tnpds: [number, number];
    thpds: [number, number];
    rdsar: [number, number];
    chipCmd: number;
    intrMask: number;
    intrStatus: number;
    txConfig: number;
    rxConfig: number;
    cfg9346: number;
    config: number[];
    timerInt: number;
    mulIntr: number;
    phyar: number;
    phyStatus: number;
    rxMaxSize: number;
    cplusCmd: number;
    intrMitigate: number;
    earlyTxThres: number;
  };
  /** Hidden: next descriptor the NIC reads on an NPQ / HPQ poll. */
  txIndex: number;
  hpqIndex: number;
  /** Hidden: next RX descriptor the NIC fills. */
  rxIndex: number;
  /** Counters no write can preset. */
  tctr: number;
  rxMissed: number;
  tally: Tally;
  irqLevel: boolean;
  phy: {
    regs: number[];
    linkUp: boolean;
    anComplete: boolean;
    /** When the link comes up (negotiation in progress), or null. */
    linkUpAtNs: number | null;
  };
  /** Operations in flight (timing): null when idle. */
  pending: { resetUntilNs: number | null; phyDoneAtNs: number | null };
}

// CHOICE (reference: "some bits EEPROM-loaded / read-only (which: unverified)"):
// power-on values and the bits a write (with Cfg9346 unlocked) may change.
const CONFIG_DEFAULT = [0x00, 0x0d, 0x00, 0x00, 0x00, 0x00];
const CONFIG_WRITABLE = [0x00, 0xf3, 0x20, 0x31, 0x7f, 0x73];

const PHY_ID1 = 0x001c; // Realtek OUI 00:07:32 (model number unverified)
const PHY_ID2 = 0xc912;
const BMCR_DEFAULT = Bmcr.AnEnable | Bmcr.FullDuplex | Bmcr.Speed1000;
const ANAR_DEFAULT = Anar.A100FD | Anar.A100HD | Anar.A10FD | Anar.A10HD | 0x0001;
const GBCR_DEFAULT = Gbcr.A1000FD | Gbcr.A1000HD;
const GBESR_VALUE = 0x3000; // 1000BASE-T full and half duplex capable

/** The chip's internal 10/100/1000 PHY behind PHYAR (IEEE 802.3 clause 22 registers). */
class Phy {
  private readonly reg = new Uint16Array(32);
  linkUp = false;
  anComplete = false;
  linkUpAtNs: number | null = null;
  private result: MiiLinkMode | null = null;

  constructor(
    private partner: LinkPartner | null,
    private readonly autonegNs: number,
    private readonly onLinkChange: () => void,
    now: number,
  ) {
    this.defaults();
    this.startLink(now);
  }

  private defaults(): void {
    this.reg.fill(0);
    this.reg[Mii.BMCR] = BMCR_DEFAULT;
    this.reg[Mii.ANAR] = ANAR_DEFAULT;
    this.reg[Mii.GBCR] = GBCR_DEFAULT;
  }

  /** Link goes down (if up) and negotiation starts over. */
  private startLink(now: number): void {
    if (this.linkUp) {
      this.linkUp = false;
      this.result = null;
      this.onLinkChange();
    }
    this.anComplete = false;
    const bmcr = this.reg[Mii.BMCR]!;
    const off = (bmcr & (Bmcr.PowerDown | Bmcr.Isolate)) !== 0;
    this.linkUpAtNs = this.partner && !off ? now + this.autonegNs : null;
  }

  setPartner(p: LinkPartner | null, now: number): void {
    this.partner = p;
    this.startLink(now);
  }

  private negotiate(): MiiLinkMode | null {
    const p = this.partner!;
    return negotiateMii(this.reg[Mii.BMCR]!, this.reg[Mii.ANAR]!, this.reg[Mii.GBCR]!, p.anlpar, p.gbsr);
  }

  nextEventNs(): number | undefined {
    return this.linkUpAtNs ?? undefined;
  }

  advanceTo(now: number): void {
    if (this.linkUpAtNs === null || this.linkUpAtNs > now) return;
    this.linkUpAtNs = null;
    this.result = this.negotiate();
    this.anComplete = (this.reg[Mii.BMCR]! & Bmcr.AnEnable) !== 0;
    if (this.result) {
      this.linkUp = true;
      this.onLinkChange();
    }
  }

  read(r: number): number {
    switch (r) {
      case Mii.BMSR:
        // CHOICE: 802.3 makes the link bit latching-low; the model reports the
        // live state (as PHYstatus does) so that no read has a hidden side effect.
        return Bmsr.Caps | (this.linkUp ? Bmsr.LinkStatus : 0) | (this.anComplete ? Bmsr.AnComplete : 0);
      case Mii.PHYID1:
        return PHY_ID1;
      case Mii.PHYID2:
        return PHY_ID2;
      case Mii.ANLPAR:
        return this.anComplete && this.partner ? this.partner.anlpar : 0;
      case Mii.ANER:
        return this.anComplete ? 0x0001 : 0;
      case Mii.GBSR:
        return this.anComplete && this.partner ? this.partner.gbsr : 0;
      case Mii.GBESR:
        return GBESR_VALUE;
      case Mii.BMCR:
      case Mii.ANAR:
      case Mii.GBCR:
        return this.reg[r]!;
      default:
        // Vendor registers 0x10–0x1f: plain storage (their function is not modelled).
        return r >= 0x10 ? this.reg[r]! : 0;
    }
  }

  write(r: number, v: number, now: number): void {
    v &= 0xffff;
    if (r === Mii.BMCR) {
      if (v & Bmcr.Reset) {
        this.defaults();
        this.startLink(now);
        return;
      }
      const old = this.reg[Mii.BMCR]!;
      this.reg[Mii.BMCR] = v & ~Bmcr.SelfClearing;
      const anOn = (v & Bmcr.AnEnable) !== 0;
      const toggled = (old ^ v) & (Bmcr.AnEnable | Bmcr.PowerDown | Bmcr.Isolate);
      const forcedChanged = !anOn && ((old ^ v) & (Bmcr.Speed100 | Bmcr.Speed1000 | Bmcr.FullDuplex)) !== 0;
      if ((anOn && v & Bmcr.AnRestart) || toggled || forcedChanged) this.startLink(now);
      return;
    }
    if (r === Mii.ANAR || r === Mii.GBCR || r >= 0x10) this.reg[r] = v;
    // Other registers are read-only: writes are ignored.
  }

  phyStatus(): number {
    return this.linkUp ? phyStatusFor(this.result) : 0;
  }

  allRegs(): number[] {
    return Array.from({ length: 32 }, (_, r) => this.read(r));
  }
}

class DmaFault extends Error {}

type TxQueue = 'npq' | 'hpq';

export class Rtl8169 implements BusDevice, TimedDevice, DeviceModel<RtlInternal> {
  readonly name: string;
  readonly mmio: { base: number; size: number };
  private readonly mem: GuestMemory;
  private readonly clock: Clock;
  private readonly irq: IrqLine;
  private readonly transmit: (frame: Uint8Array) => void;
  private readonly eepromMac: Uint8Array;
  private readonly phyAccessNs: number;
  private readonly resetNs: number;
  private readonly phy: Phy;
  private readonly variant: RtlVariant;

  private readonly idr = new Uint8Array(6);
  private readonly mar = new Uint8Array(8);
  private readonly dtccr = new Uint32Array(2);
  private readonly tnpds = new Uint32Array(2);
  private readonly thpds = new Uint32Array(2);
  private readonly rdsar = new Uint32Array(2);
  private chipCmd = 0; // TxEnb | RxEnb
  private resetUntilNs: number | null = null;
  private imr = 0;
  private isr = 0;
  private txConfig: number = TxCfg.HwId8169S;
  private rxConfig = 0;
  private tctrOriginNs: number;
  private timerInt = 0;
  private rxMissed = 0;
  private cfg9346 = 0;
  private readonly config = Uint8Array.from(CONFIG_DEFAULT);
  private mulIntr = 0;
  private phyar = 0;
  private phyOp: { doneAtNs: number; cmd: number } | null = null;
  private rxMaxSize = 0;
  private cplusCmd = 0;
  private intrMitigate = 0;
  private earlyTxThres = 0;

  private txIndex = 0;
  private hpqIndex = 0;
  private rxIndex = 0;
  private tally: Tally = emptyTally();
  private irqLevel = false;
  /** Time up to which TimeOut crossings have been evaluated. */
  private timerCheckedNs: number;

  constructor(o: Rtl8169Options) {
    if (o.mac.length !== 6) throw new RangeError('RTL8169 MAC address must be 6 bytes');
    this.name = o.name;
    this.mmio = { base: o.mmioBase, size: RTL_BAR_SIZE };
    this.mem = o.mem;
    this.clock = o.clock;
    this.irq = o.irq;
    this.transmit = o.transmit;
    this.eepromMac = Uint8Array.from(o.mac);
    this.idr.set(this.eepromMac);
    this.phyAccessNs = o.phyAccessNs ?? 0;
    this.resetNs = o.resetNs ?? 0;
    this.variant = o.variant ?? {};
    const now = o.clock.nowNs();
    this.tctrOriginNs = now;
    this.timerCheckedNs = now;
    this.phy = new Phy(o.partner === undefined ? DEFAULT_PARTNER : o.partner, o.autonegNs ?? 1_500_000_000, () => this.raise(Intr.LinkChg), now);
  }

  // ---------------------------------------------------------------- time

  nextEventNs(): number | undefined {
    const c = [this.resetUntilNs, this.phyOp?.doneAtNs, this.phy.nextEventNs(), this.nextTimeoutNs(this.timerCheckedNs)];
    let best: number | undefined;
    for (const t of c) if (t !== null && t !== undefined && (best === undefined || t < best)) best = t;
    return best;
  }

  advanceTo(nowNs: number): void {
    for (let guard = 0; guard < 64; guard++) {
      const e = this.nextEventNs();
      if (e === undefined || e > nowNs) break;
      if (this.resetUntilNs !== null && this.resetUntilNs <= e) this.resetUntilNs = null;
      if (this.phyOp && this.phyOp.doneAtNs <= e) this.completePhyOp(e);
      this.phy.advanceTo(e);
      const t = this.nextTimeoutNs(this.timerCheckedNs);
      if (t !== undefined && t <= e) {
        this.timerCheckedNs = t;
        this.raise(Intr.TimeOut);
      }
    }
    if (nowNs > this.timerCheckedNs) this.timerCheckedNs = nowNs;
    this.updateIrq();
  }

  private sync(): void {
    this.advanceTo(this.clock.nowNs());
  }

  private tctrAt(ns: number): number {
    return Math.floor((ns - this.tctrOriginNs) / TCTR_TICK_NS) % TWO32;
  }

  /** The first moment after `afterNs` at which TCTR reaches TimerInt (TimeOut), if armed. */
  private nextTimeoutNs(afterNs: number): number | undefined {
    if (this.timerInt === 0) return undefined;
    const ticksAfter = (afterNs - this.tctrOriginNs) / TCTR_TICK_NS;
    let abs = this.timerInt;
    if (abs <= ticksAfter) abs += Math.ceil((ticksAfter - abs + 1e-9) / TWO32) * TWO32;
    let t = this.tctrOriginNs + abs * TCTR_TICK_NS;
    if (t <= afterNs) t += TWO32 * TCTR_TICK_NS;
    return t;
  }

  // ---------------------------------------------------------------- interrupts

  private raise(bits: number): void {
    this.isr |= bits & INTR_IMPLEMENTED;
    this.updateIrq();
  }

  /** Level-triggered INTA#: asserted while (IntrStatus & IntrMask) != 0 [reference]. */
  private updateIrq(): void {
    const level = (this.isr & this.imr & INTR_IMPLEMENTED) !== 0;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq(level);
    }
  }

  // ---------------------------------------------------------------- MMIO

  mmioRead(offset: number, size: AccessSize): number {
    this.sync();
    let v = 0;
    for (let i = 0; i < size; i++) v += this.readByte(offset + i) * 2 ** (8 * i);
    return v >>> 0;
  }

  mmioWrite(offset: number, size: AccessSize, value: number): void {
    this.sync();
    const touched = new Set<string>();
    for (let i = 0; i < size; i++) this.writeByte(offset + i, Math.floor(value / 2 ** (8 * i)) & 0xff, touched);
    this.commit(touched);
    this.updateIrq();
  }

  private readByte(o: number): number {
    const b32 = (v: number, base: number) => (v >>> (8 * (o - base))) & 0xff;
    if (o < 0x06) return this.idr[o]!;
    if (o < 0x08) return 0;
    if (o < 0x10) return this.mar[o - 0x08]!;
    if (o < 0x18) return b32(this.dtccr[(o - 0x10) >> 2]!, 0x10 + ((o - 0x10) & 4));
    if (o >= 0x20 && o < 0x28) return b32(this.tnpds[(o - 0x20) >> 2]!, 0x20 + ((o - 0x20) & 4));
    if (o >= 0x28 && o < 0x30) return b32(this.thpds[(o - 0x28) >> 2]!, 0x28 + ((o - 0x28) & 4));
    if (o >= 0xe4 && o < 0xec) return b32(this.rdsar[(o - 0xe4) >> 2]!, 0xe4 + ((o - 0xe4) & 4));
    switch (o) {
      case Reg.CHIPCMD:
        return this.chipCmd | (this.resetUntilNs !== null ? ChipCmd.Reset : 0);
      case Reg.TXPOLL:
        // CHOICE: reads 0. PCIe relatives report a busy NPQ here ([FBSD]
        // RL_FLAG_WAIT_TXPOLL); this model's DMA completes within the write.
        return 0;
      case Reg.INTRMASK:
      case Reg.INTRMASK + 1:
        return b32(this.imr, Reg.INTRMASK);
      case Reg.INTRSTATUS:
      case Reg.INTRSTATUS + 1:
        return b32(this.isr, Reg.INTRSTATUS);
      case Reg.CFG9346:
        return this.cfg9346;
      case Reg.PHYSTATUS:
        return this.phy.phyStatus();
      case Reg.EARLYTXTHRES:
        return this.earlyTxThres;
    }
    if (o >= Reg.TXCONFIG && o < Reg.TXCONFIG + 4) return b32(this.txConfig, Reg.TXCONFIG);
    if (o >= Reg.RXCONFIG && o < Reg.RXCONFIG + 4) return b32(this.rxConfig, Reg.RXCONFIG);
    if (o >= Reg.TCTR && o < Reg.TCTR + 4) return b32(this.tctrAt(this.clock.nowNs()), Reg.TCTR);
    if (o >= Reg.RXMISSED && o < Reg.RXMISSED + 4) return b32(this.rxMissed, Reg.RXMISSED);
    if (o >= Reg.CONFIG0 && o <= Reg.CONFIG5) return this.config[o - Reg.CONFIG0]!;
    if (o >= Reg.TIMERINT && o < Reg.TIMERINT + 4) return b32(this.timerInt, Reg.TIMERINT);
    if (o >= Reg.MULINTR && o < Reg.MULINTR + 2) return b32(this.mulIntr, Reg.MULINTR);
    if (o >= Reg.PHYAR && o < Reg.PHYAR + 4) return b32(this.phyar, Reg.PHYAR);
    if (o >= Reg.RXMAXSIZE && o < Reg.RXMAXSIZE + 2) return b32(this.rxMaxSize, Reg.RXMAXSIZE);
    if (o >= Reg.CPLUSCMD && o < Reg.CPLUSCMD + 2) return b32(this.cplusCmd, Reg.CPLUSCMD);
    if (o >= Reg.INTRMITIGATE && o < Reg.INTRMITIGATE + 2) return b32(this.intrMitigate, Reg.INTRMITIGATE);
    return 0; // unimplemented registers read as 0
  }

  private static setByte(v: number, o: number, base: number, b: number, writable = 0xffffffff): number {
    const sh = 8 * (o - base);
    const m = ((0xff << sh) & writable) >>> 0;
    return ((v & ~m) | ((b << sh) & m)) >>> 0;
  }

  private writeByte(o: number, b: number, touched: Set<string>): void {
    const unlocked = (this.cfg9346 & Cfg9346.ModeMask) === Cfg9346.Unlock;
    if (o < 0x06) {
      // IDR writes take effect only with Cfg9346 unlocked [FBSD re_init_locked, reference].
      if (unlocked) this.idr[o] = b;
      return;
    }
    if (o < 0x08) return;
    if (o < 0x10) {
      this.mar[o - 0x08] = b;
      return;
    }
    if (o < 0x18) {
      const i = (o - 0x10) >> 2;
      this.dtccr[i] = Rtl8169.setByte(this.dtccr[i]!, o, 0x10 + 4 * i, b);
      if (o === Reg.DTCCR_LO) touched.add('dtccr');
      return;
    }
    // CHOICE (reference: unverified whether rewriting a ring base zeroes the
    // index): it does not, unless variant.ringBaseWriteZeroesIndex.
    if (o >= 0x20 && o < 0x30) {
      const arr = o < 0x28 ? this.tnpds : this.thpds;
      const base0 = o < 0x28 ? 0x20 : 0x28;
      const i = (o - base0) >> 2;
      arr[i] = Rtl8169.setByte(arr[i]!, o, base0 + 4 * i, b);
      if (this.variant.ringBaseWriteZeroesIndex && i === 0) {
        if (o < 0x28) this.txIndex = 0;
        else this.hpqIndex = 0;
      }
      return;
    }
    if (o >= 0xe4 && o < 0xec) {
      const i = (o - 0xe4) >> 2;
      this.rdsar[i] = Rtl8169.setByte(this.rdsar[i]!, o, 0xe4 + 4 * i, b);
      if (this.variant.ringBaseWriteZeroesIndex && i === 0) this.rxIndex = 0;
      return;
    }
    switch (o) {
      case Reg.CHIPCMD:
        this.pendingChipCmd = b;
        touched.add('chipcmd');
        return;
      case Reg.TXPOLL:
        this.pendingTxPoll |= b;
        touched.add('txpoll');
        return;
      case Reg.INTRMASK:
      case Reg.INTRMASK + 1:
        this.imr = Rtl8169.setByte(this.imr, o, Reg.INTRMASK, b, INTR_IMPLEMENTED);
        return;
      case Reg.INTRSTATUS:
      case Reg.INTRSTATUS + 1:
        // Write-1-to-clear [reference].
        this.isr = (this.isr & ~(b << (8 * (o - Reg.INTRSTATUS)))) & 0xffff;
        return;
      case Reg.CFG9346:
        this.pendingCfg9346 = b;
        touched.add('cfg9346');
        return;
      case Reg.EARLYTXTHRES:
        this.earlyTxThres = b;
        return;
    }
    if (o >= Reg.TXCONFIG && o < Reg.TXCONFIG + 4) {
      this.txConfig = Rtl8169.setByte(this.txConfig, o, Reg.TXCONFIG, b, TxCfg.Writable);
      return;
    }
    if (o >= Reg.RXCONFIG && o < Reg.RXCONFIG + 4) {
      this.rxConfig = Rtl8169.setByte(this.rxConfig, o, Reg.RXCONFIG, b, RxCfg.Writable);
      return;
    }
    if (o >= Reg.TCTR && o < Reg.TCTR + 4) {
      touched.add('tctr');
      return;
    }
    if (o >= Reg.RXMISSED && o < Reg.RXMISSED + 4) {
      touched.add('rxmissed');
      return;
    }
    if (o >= Reg.CONFIG0 && o <= Reg.CONFIG5) {
      // Config0–5 are writable only unlocked; CHOICE of writable bits: CONFIG_WRITABLE.
      const n = o - Reg.CONFIG0;
      if (unlocked) this.config[n] = (this.config[n]! & ~CONFIG_WRITABLE[n]!) | (b & CONFIG_WRITABLE[n]!);
      return;
    }
    if (o >= Reg.TIMERINT && o < Reg.TIMERINT + 4) {
      this.timerInt = Rtl8169.setByte(this.timerInt, o, Reg.TIMERINT, b);
      return;
    }
    if (o >= Reg.MULINTR && o < Reg.MULINTR + 2) {
      this.mulIntr = Rtl8169.setByte(this.mulIntr, o, Reg.MULINTR, b, 0xffff);
      return;
    }
    if (o >= Reg.PHYAR && o < Reg.PHYAR + 4) {
      this.phyarImage = Rtl8169.setByte(this.phyarImage ?? this.phyar, o, Reg.PHYAR, b);
      if (o === Reg.PHYAR + 3) touched.add('phyar');
      return;
    }
    if (o >= Reg.RXMAXSIZE && o < Reg.RXMAXSIZE + 2) {
      this.rxMaxSize = Rtl8169.setByte(this.rxMaxSize, o, Reg.RXMAXSIZE, b, 0xffff);
      return;
    }
    if (o >= Reg.CPLUSCMD && o < Reg.CPLUSCMD + 2) {
      // CHOICE: all 16 bits stored as written (which are reserved on the 8169S is unverified).
      this.cplusCmd = Rtl8169.setByte(this.cplusCmd, o, Reg.CPLUSCMD, b, 0xffff);
      return;
    }
    if (o >= Reg.INTRMITIGATE && o < Reg.INTRMITIGATE + 2) {
      this.intrMitigate = Rtl8169.setByte(this.intrMitigate, o, Reg.INTRMITIGATE, b, 0xffff);
      return;
    }
    // Unimplemented registers ignore writes.
  }

  private pendingChipCmd = 0;
  private pendingTxPoll = 0;
  private pendingCfg9346 = 0;
  private phyarImage: number | null = null;

  /** Side effects of a write, once all its bytes are in (fixed order). */
  private commit(t: Set<string>): void {
    const now = this.clock.nowNs();
    if (t.has('cfg9346')) {
      const v = this.pendingCfg9346;
      if ((v & Cfg9346.ModeMask) === Cfg9346.AutoLoad) {
        // Auto-load: IDR reloads from the EEPROM, then the mode returns to normal [reference].
        this.idr.set(this.eepromMac);
        this.cfg9346 = v & ~Cfg9346.ModeMask;
      } else this.cfg9346 = v;
    }
    if (t.has('chipcmd')) {
      const v = this.pendingChipCmd;
      if (v & ChipCmd.Reset) this.reset(now);
      // CHOICE (reference: unverified; QEMU's C+ model zeroes the indices on
      // any ChipCmd write with RxEnb/TxEnb): enabling does NOT touch the
      // internal indices here. Only CmdReset zeroes them. StopReq is ignored.
      else {
        this.chipCmd = v & (ChipCmd.TxEnb | ChipCmd.RxEnb);
        if (this.variant.enableZeroesIndex) {
          if (v & ChipCmd.TxEnb) this.txIndex = this.hpqIndex = 0;
          if (v & ChipCmd.RxEnb) this.rxIndex = 0;
        }
      }
    }
    if (t.has('dtccr')) {
      if (this.dtccr[0]! & Dtccr.Cmd) this.dumpTally();
    }
    if (t.has('phyar')) {
      const cmd = this.phyarImage!;
      this.phyarImage = null;
      if (this.phyOp) this.completePhyOp(now); // a new command first finishes the old one
      this.phyar = cmd;
      this.phyOp = { doneAtNs: now + this.phyAccessNs, cmd };
      if (this.phyAccessNs === 0) this.completePhyOp(now);
    }
    if (t.has('tctr')) {
      // Any write restarts TCTR from 0 [reference].
      this.tctrOriginNs = now;
      this.timerCheckedNs = now;
    }
    if (t.has('rxmissed')) this.rxMissed = 0; // a write clears it [reference]
    if (t.has('txpoll')) {
      const v = this.pendingTxPoll;
      this.pendingTxPoll = 0;
      if (v & TxPoll.FSWInt) this.raise(Intr.SWInt);
      // The high-priority queue is served before the normal one [DS].
      if (v & TxPoll.HPQ) this.walkTx('hpq');
      if (v & TxPoll.NPQ) this.walkTx('npq');
    }
  }

  /**
   * CmdReset [reference]: stop DMA, TX and RX indices to 0, IntrMask and
   * IntrStatus to 0; the bit self-clears.
   * CHOICES (unverified on the 8169): IDR, MAR, ring bases, Tx/RxConfig,
   * CPlusCmd, Config0–5 and DTCCR survive; TxEnb/RxEnb clear; TCTR restarts;
   * TimerInt, RxMissed and Cfg9346 clear. Tally counters survive ([LNX]:
   * before VER_19 only a power cycle resets them). The PHY is not reset.
   */
  private reset(now: number): void {
    this.chipCmd = 0;
    this.txIndex = 0;
    this.hpqIndex = 0;
    this.rxIndex = 0;
    this.imr = 0;
    this.isr = 0;
    this.tctrOriginNs = now;
    this.timerCheckedNs = now;
    this.timerInt = 0;
    this.rxMissed = 0;
    this.cfg9346 = 0;
    if (this.variant.resetClearsRingBases) {
      this.tnpds.fill(0);
      this.thpds.fill(0);
      this.rdsar.fill(0);
    }
    this.resetUntilNs = this.resetNs > 0 ? now + this.resetNs : null;
  }

  private completePhyOp(now: number): void {
    const op = this.phyOp;
    if (!op) return;
    this.phyOp = null;
    const reg = (op.cmd >>> Phyar.RegShift) & Phyar.RegMask;
    if (op.cmd & Phyar.Flag) {
      // Write: the chip clears Flag when done [reference].
      this.phy.write(reg, op.cmd & Phyar.DataMask, now);
      this.phyar = (op.cmd & ~Phyar.Flag) >>> 0;
    } else {
      // Read: the chip sets Flag when the data is valid [reference].
      this.phyar = (Phyar.Flag | (reg << Phyar.RegShift) | this.phy.read(reg)) >>> 0;
    }
  }

  // ---------------------------------------------------------------- DMA

  private static addr(lo: number, hi: number): number {
    return hi * TWO32 + lo;
  }

  private dmaCheck(a: number, len: number): void {
    if (!this.mem.inRange(a, len)) throw new DmaFault(`DMA 0x${a.toString(16)}+${len} outside RAM`);
  }
  private dmaRead32(a: number): number {
    this.dmaCheck(a, 4);
    return this.mem.read32(a);
  }
  private dmaWrite32(a: number, v: number): void {
    this.dmaCheck(a, 4);
    this.mem.write32(a, v);
  }

  /** A DMA to an address outside RAM: the PCI master abort shows as SysErr; the operation stops. */
  private withDma(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (!(e instanceof DmaFault)) throw e;
      this.raise(Intr.SysErr);
    }
  }

  private dumpTally(): void {
    this.withDma(() => {
      const a = Rtl8169.addr(this.dtccr[0]! & Dtccr.AddrMask, this.dtccr[1]!);
      const b = encodeTally(this.tally);
      this.dmaCheck(a, b.length);
      this.mem.writeBytes(a, b);
    });
    // The chip clears Cmd when the 64-byte dump is written [DS p15].
    this.dtccr[0] = (this.dtccr[0]! & ~Dtccr.Cmd) >>> 0;
  }

  /**
   * TX ring walk on a TxPoll write [reference]: from the internal index, read
   * descriptors; stop at the first with OWN = 0; gather FS…LS into one frame,
   * pad to 60 bytes, send; write opts1 back with OWN cleared (everything else
   * kept); advance, wrapping after a descriptor with EOR; raise TxOK per frame.
   * Nothing resumes until the next TxPoll write.
   *
   * CHOICE: when the walk meets OWN = 0 inside a frame (FS seen, LS not), the
   * partial frame is not consumed: the index stays at its FS descriptor, so
   * the frame is sent whole on a later poll. TxDescUnavail is raised whenever
   * the walk ends on a descriptor it does not own ([DS] TDU: "the Tx
   * descriptor is unavailable").
   */
  private walkTx(q: TxQueue): void {
    if (!(this.chipCmd & ChipCmd.TxEnb)) return;
    const ring = q === 'npq' ? this.tnpds : this.thpds;
    const base = Rtl8169.addr(ring[0]!, ring[1]!);
    let idx = q === 'npq' ? this.txIndex : this.hpqIndex;
    let frameStart = idx;
    const parts: Uint8Array[] = [];
    const descs: Array<{ at: number; opts1: number }> = [];
    this.withDma(() => {
      for (let guard = 0; guard < 4 * MAX_RING_DESCRIPTORS; guard++) {
        const at = base + idx * Desc.BYTES;
        const opts1 = this.dmaRead32(at);
        if (!(opts1 & Desc.OWN)) {
          idx = frameStart; // a partial frame stays for a later poll
          this.raise(Intr.TxDescUnavail);
          return;
        }
        this.dmaCheck(at, Desc.BYTES);
        const buf = Rtl8169.addr(this.mem.read32(at + 8), this.mem.read32(at + 12));
        const len = opts1 & Desc.TxLenMask;
        this.dmaCheck(buf, len);
        parts.push(this.mem.readBytes(buf, len));
        descs.push({ at, opts1 });
        const next = opts1 & Desc.EOR ? 0 : (idx + 1) % MAX_RING_DESCRIPTORS;
        if (opts1 & Desc.LS || descs.length >= MAX_RING_DESCRIPTORS) {
          const total = parts.reduce((s, p) => s + p.length, 0);
          if (opts1 & Desc.LS && total <= MAX_FRAME) {
            const frame = new Uint8Array(Math.max(total, ETH_ZLEN));
            let off = 0;
            for (const p of parts) {
              frame.set(p, off);
              off += p.length;
            }
            this.sendFrame(frame);
            this.tally.txOk++;
            this.raise(Intr.TxOK);
          } else {
            this.tally.txErr++;
            this.raise(Intr.TxErr);
          }
          for (const d of descs) this.dmaWrite32(d.at, d.opts1 & ~Desc.OWN);
          parts.length = 0;
          descs.length = 0;
          frameStart = next;
        }
        idx = next;
      }
    });
    if (q === 'npq') this.txIndex = idx;
    else this.hpqIndex = idx;
  }

  private inMacLoopback(): boolean {
    // CHOICE: any nonzero loopback field loops the frame inside the chip (01 = MAC loopback [FBSD re_diag]).
    return (this.txConfig & TxCfg.LoopbackMask) !== 0;
  }

  private sendFrame(frame: Uint8Array): void {
    if (this.inMacLoopback()) this.receiveInternal(frame);
    else if (this.phy.linkUp) this.transmit(frame);
    // No carrier: the frame is lost (but completes, as on the wire).
  }

  /** A frame from the wire. Ignored in MAC loopback (the MAC is cut off from the PHY) and without link. */
  receiveFrame(frame: Uint8Array): void {
    this.sync();
    if (this.inMacLoopback() || !this.phy.linkUp) return;
    this.receiveInternal(frame);
    this.updateIrq();
  }

  /** Receive filter [reference]: AAP all, APM my MAC, AM multicast by hash, AB broadcast, AR runts. */
  private accept(frame: Uint8Array): number | null {
    const f = this.rxConfig;
    if (frame.length < 6) return null;
    if (frame.length + ETH_FCS_LEN < 64 && !(f & RxCfg.AcceptRunt)) return null;
    if (isBroadcast(frame)) return f & (RxCfg.AcceptBroadcast | RxCfg.AcceptAllPhys) ? Desc.RxBAR : null;
    if (isMulticast(frame)) {
      const bit = multicastHashBit(frame);
      const hit = (this.mar[bit >> 3]! >> (bit & 7)) & 1;
      return f & RxCfg.AcceptAllPhys || (f & RxCfg.AcceptMulticast && hit) ? Desc.RxMAR : null;
    }
    let mine = true;
    for (let i = 0; i < 6; i++) if (frame[i] !== this.idr[i]) mine = false;
    if (mine && f & RxCfg.AcceptMyPhys) return Desc.RxPAM;
    return f & RxCfg.AcceptAllPhys ? (mine ? Desc.RxPAM : 0) : null;
  }

  /**
   * RX DMA [reference]: read the descriptor at the internal index; if the
   * NIC does not own it, drop the frame, count RxMissed, raise RxDescUnavail
   * and do not advance; else write the data (frame + FCS), then opts1
   * (status, length incl. CRC, OWN = 0, EOR kept), advance (wrap on EOR) and
   * raise RxOK. A frame larger than one buffer spans descriptors (FS…LS);
   * CHOICE: it is written only if all the descriptors it needs are owned.
   */
  private receiveInternal(frame: Uint8Array): void {
    if (!(this.chipCmd & ChipCmd.RxEnb)) return;
    const flags = this.accept(frame);
    if (flags === null) return;
    const data = new Uint8Array(frame.length + ETH_FCS_LEN);
    data.set(frame);
    new DataView(data.buffer).setUint32(frame.length, ethernetFcs(frame), true);
    if (this.rxMaxSize !== 0 && data.length > this.rxMaxSize) {
      // CHOICE: an over-long frame (RxMaxSize filter, [LNX] "Low hurts") counts as an RX error.
      this.tally.rxErr++;
      this.raise(Intr.RxErr);
      return;
    }
    const base = Rtl8169.addr(this.rdsar[0]!, this.rdsar[1]!);
    this.withDma(() => {
      const plan: Array<{ at: number; opts1: number; buf: number; n: number }> = [];
      let idx = this.rxIndex;
      let left = data.length;
      while (left > 0) {
        const at = base + idx * Desc.BYTES;
        const opts1 = this.dmaRead32(at);
        const size = opts1 & Desc.RxLenMask;
        if (!(opts1 & Desc.OWN) || size === 0 || plan.length >= MAX_RING_DESCRIPTORS) {
          this.rxMissed = (this.rxMissed + 1) & 0xffffff;
          this.tally.rxMissed++;
          this.raise(Intr.RxDescUnavail);
          return;
        }
        this.dmaCheck(at, Desc.BYTES);
        const buf = Rtl8169.addr(this.mem.read32(at + 8), this.mem.read32(at + 12));
        const n = Math.min(size, left);
        this.dmaCheck(buf, n);
        plan.push({ at, opts1, buf, n });
        left -= n;
        idx = opts1 & Desc.EOR ? 0 : (idx + 1) % MAX_RING_DESCRIPTORS;
      }
      // Data first, then status, then IntrStatus [reference].
      let off = 0;
      for (const p of plan) {
        this.mem.writeBytes(p.buf, data.subarray(off, off + p.n));
        off += p.n;
      }
      plan.forEach((p, i) => {
        const fs = i === 0 ? Desc.FS : 0;
        const ls = i === plan.length - 1 ? Desc.LS : 0;
        this.mem.write32(p.at, ((p.opts1 & Desc.EOR) | fs | ls | flags | (data.length & Desc.RxLenMask)) >>> 0);
      });
      this.rxIndex = idx;
      this.tally.rxOk++;
      if (flags === Desc.RxBAR) this.tally.rxBroadcast++;
      else if (flags === Desc.RxMAR) this.tally.rxMulticast++;
      else this.tally.rxUnicast++;
      this.raise(Intr.RxOK);
    });
  }

  // ---------------------------------------------------------------- test & sim helpers

  /** Plug in / pull the cable (null): the link drops and renegotiates, raising LinkChg. */
  setLinkPartner(p: LinkPartner | null): void {
    this.sync();
    this.phy.setPartner(p, this.clock.nowNs());
    this.updateIrq();
  }

  inspect(): RtlInternal {
    this.sync();
    return {
      regs: {
        idr: Array.from(this.idr),
        mar: Array.from(this.mar),
        dtccr: [this.dtccr[0]!, this.dtccr[1]!],
        tnpds: [this.tnpds[0]!, this.tnpds[1]!],
        thpds: [this.thpds[0]!, this.thpds[1]!],
        rdsar: [this.rdsar[0]!, this.rdsar[1]!],
        chipCmd: this.chipCmd,
        intrMask: this.imr,
        intrStatus: this.isr,
        txConfig: this.txConfig,
        rxConfig: this.rxConfig,
        cfg9346: this.cfg9346,
        config: Array.from(this.config),
        timerInt: this.timerInt,
        mulIntr: this.mulIntr,
        phyar: this.phyar,
        phyStatus: this.phy.phyStatus(),
        rxMaxSize: this.rxMaxSize,
        cplusCmd: this.cplusCmd,
        intrMitigate: this.intrMitigate,
        earlyTxThres: this.earlyTxThres,
      },
      txIndex: this.txIndex,
      hpqIndex: this.hpqIndex,
      rxIndex: this.rxIndex,
      tctr: this.tctrAt(this.clock.nowNs()),
      rxMissed: this.rxMissed,
      tally: { ...this.tally },
      irqLevel: this.irqLevel,
      phy: { regs: this.phy.allRegs(), linkUp: this.phy.linkUp, anComplete: this.phy.anComplete, linkUpAtNs: this.phy.linkUpAtNs },
      pending: { resetUntilNs: this.resetUntilNs, phyDoneAtNs: this.phyOp?.doneAtNs ?? null },
    };
  }
}
