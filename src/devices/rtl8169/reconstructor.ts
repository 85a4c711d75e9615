/**
 * RTL8169 reconstructor: capture the NIC on a paused source, recreate it on
 * a freshly reset destination NIC — hidden TX/RX descriptor indices included
 * — through nothing but MMIO, guest memory and the hypervisor's shadow
 * (DESIGN rule 2).
 *
 * ## Deriving the hidden indices (OS-independent)
 *
 * The NIC's TX index t is the descriptor it reads on the next TxPoll; its
 * RX index r the descriptor it fills next. No register shows them. What the
 * hardware guarantees (reference, "Ring walking"): the NIC walks a ring in
 * order, wraps after a descriptor with EOR, stops at the first descriptor it
 * does not own, and clears OWN on what it consumed. Nothing else is assumed
 * of the guest driver: not that it zeroes reaped descriptors ([LNX] does,
 * [FBSD] does not), not its ring size (which exists only as an EOR bit, and
 * [LNX] even erases that bit when it reaps the last TX slot), not its
 * counters in RAM.
 *
 * TX — always verified by a probe, free when the guess is right:
 *   1. Guess g from memory: the start of the run of OWN = 1 descriptors
 *      (frames posted but not yet kicked start exactly at t when the driver
 *      and NIC agree), else the slot after the last consumed-but-unreaped
 *      descriptor, else 0. The guess can be wrong (all reaped and zeroed; a
 *      driver paused mid-post, [FBSD] sets OWN on later segments first).
 *   2. Probe on the source, in MAC loopback with the RX filter closed so no
 *      frame leaves or is received: replace the ring (in memory) by dummies
 *      that are all OWN = 1 except slot g, kick TxPoll, read the ring back.
 *      The NIC consumes from t up to g and stops. Nothing consumed: t = g.
 *      Else the consumed slots are exactly the cyclic run [t, g): t is its
 *      first slot, and the NIC now sits at g. In the same program, without
 *      knowing t: owning slot g as well leaves exactly [g, t) owned, so a
 *      second kick brings the NIC back to t (one full lap in total, also
 *      when the guess was right). Then the guest's ring bytes are put back.
 *   When the ring length is unknown (no EOR in memory) the probe ring spans
 *   the readable window up to the next known object (the other ring), with
 *   EOR on its last slot: t lies inside it, the NIC never walked past the
 *   real end (a descriptor it consumes at the real end carries EOR), so the
 *   position found is the real t.
 *
 * RX — from memory when unambiguous, else a probe lap:
 *   Cyclically the ring holds OWN = 0 for frames filled and not yet re-armed
 *   and OWN = 1 for armed slots. If the NIC fills in order and the driver
 *   hands slots back in the order they were filled (every driver that
 *   processes frames in order does — the NIC only ever reads slot r), there
 *   is exactly one OWN 0 -> 1 transition and it is at r. That case (ring
 *   length known from EOR, exactly one transition) is taken from memory.
 *   All OWN = 1 (idle, the common case), all OWN = 0 (ring full) or several
 *   transitions are ambiguous: a probe lap decides. With t known, the TX
 *   ring shrunk to slots [0, t] (EOR on t) is a loop that starts and ends at
 *   t; through it, in loopback, the NIC receives exactly one lap of frames
 *   into a ring of dummies that are all owned: the first frame is one byte
 *   longer than the others, so the slot with that length is r, and after a
 *   whole lap the NIC is back at r. Frames the lap does not need are
 *   addressed so the filter rejects them. Costs one RX lap of loopback frames.
 *
 * Not derivable: with TxEnb (or RxEnb for RX) off the NIC cannot be probed
 * (enabling it could itself zero an index on some silicon); the memory
 * guess is used and the report says the index is uncertain. The RX memory
 * rule assumes slots are handed back in fill order; any other pattern goes
 * to the lap, so a driver that re-arms out of order costs a lap, not a
 * wrong index.
 *
 * ## Side effects on the source
 * Capture runs on the paused guest, beside the final memory copy: the
 * shadow and a register program in parallel, then 3 programs (ring windows;
 * the scratch bytes; the TX probes, each returning its queue within the
 * program, and — unless an RX lap is needed — everything put back), and a
 * 4th for the RX lap and the put-back, which needs t. It leaves guest RAM, the
 * indices and all registers as they were, with two exceptions that
 * rollback() undoes: RX is left quiesced (accept bits cleared, so no frame
 * is DMA'd into the source's RAM after capture) and IntrMask 0 (no line
 * change reaches the paused guest's PIC). IntrStatus bits the probes raised
 * are cleared again; bits the guest had pending are never cleared. The
 * tally counters of the source count the probe frames (statistics; they
 * cannot be decremented). If capture fails midway it puts memory, registers
 * and any probe-moved TX index back before rethrowing. Frames the NIC DMA'd
 * between the final copy and capture's first program are in the IOMMU dirty
 * log: the engine must copy those pages after capture.
 *
 * ## Scratch memory
 * Dummy frames (one 66-byte image holds all three kinds), the dummy RX
 * landing buffer and tally dumps need guest RAM the NIC may DMA to. The
 * reconstructor borrows it from buffers the guest itself gave the NIC
 * (armed RX buffers, filled RX buffers, TX buffers; never inside a ring
 * window), captures those bytes first and writes them back. Two regions of
 * 65–66 bytes suffice; a tally dump is done only when a 64-byte aligned
 * block also fits.
 *
 * ## Restore (destination, after the final memory copy)
 * One program, after prepare(): prepare only reads the destination PHY and
 * needs nothing captured, so the engine runs it beside the capture (restore
 * runs it first itself when not given its result: two programs). The link
 * partner there decides whether autonegotiation must restart (when the
 * guest's advertisement gives a different mode there, or a mode different
 * from the source's — then the guest gets LinkChg, as it should). The program: CmdReset
 * (indices 0 — never relying on an enable or a ring-base write to zero
 * them), PHY writes replayed from the shadow, registers in the driver-safe
 * order (unlock, C+, Config, MAC, RxMaxSize, ring bases — always rewritten —,
 * lock), TxEnb|RxEnb, MAC loopback and a broadcast-only filter; then one
 * stream of dummy frames moves both indices: the RX ring holds r owned
 * landing slots and an unowned slot r; TX loops [0..k) at index 0 (EOR on
 * k-1, so the TX index returns to 0) and then the run [0, t) send max(r +
 * missed, t) frames in all, of which exactly r + missed are accepted
 * broadcasts (X) — they advance RX to r and recreate RxOK, RxDescUnavail
 * and RxMissed (by frames into the unowned slot) — and the rest rejected
 * (Y); HPQ gets its own h dummies. The last frame of the TX run [0, t) (or,
 * at t = 0, a one-slot loop) is the *announcement*: with the RX filter
 * closed and loopback off it leaves on the wire as a broadcast RARP with the
 * guest's MAC (QEMU's announce-self), so the switch learns the guest's new
 * port before the guest runs; it moves TX like any dummy and nothing of the
 * guest's rings. Not sent when the link is down or being renegotiated, or
 * the guest keeps its NIC in loopback (RestoreReport.extra.announced says).
 * On rollback nothing announces the source again: the guest's next frame
 * there (its own gratuitous ARP after the pause) moves the MAC back.
 * TxOK, TxDescUnavail and SWInt (FSWInt)
 * are recreated by the same traffic; the guest's ring and scratch bytes go
 * back; final registers (MAR, RxConfig, TxConfig with the guest's loopback
 * bits, DTCCR, PHYAR by repeating the guest's last PHY command, Cfg9346,
 * TimerInt with TCTR restarted; TimeOut recreated by a short TimerInt),
 * write-1-to-clear of every IntrStatus bit the source did not have,
 * IntrMask last. Not recreatable, reported in RestoreReport.extra: LinkChg,
 * RxErr, TxErr, RxFIFOOver, SysErr (lostIntrBits); TCTR and tally counters
 * (tctrOffset, tallyOffset.*); RxMissed beyond 4096 (rxMissedOffset); PHYAR
 * when the guest's last PHY command was restart/reset (phyarNotRecreated).
 */
import type { DeviceAccess, IoOp, IoProgram, IoResult, Reconstructor, RestoreReport } from '../io.js';
import { BaremigError } from '../../errors.js';
import {
  Bmcr,
  ChipCmd,
  Cfg9346,
  Desc,
  Dtccr,
  ETH_ZLEN,
  INTR_IMPLEMENTED,
  Intr,
  MAX_RING_DESCRIPTORS,
  Mii,
  Phyar,
  Reg,
  RxCfg,
  TALLY_BYTES,
  TALLY_FIELDS,
  type Tally,
  TxCfg,
  TxPoll,
  decodeTally,
  negotiateMii,
  phyStatusFor,
} from './registers.js';
import { type RtlShadow, rtlShadowFrom } from './shadow.js';

export interface Rtl8169ReconstructorConfig {
  /** BAR1 guest-physical address of the NIC on both nodes. */
  mmioBase: number;
  /** Device name (for per-device shadow keys). */
  device: string;
  /**
   * Time given to the source NIC to finish a TX batch the guest kicked just
   * before the pause, before the probe rewrites the ring: the 8169 has no
   * TX-idle bit ([LNX] polls TXCFG_EMPTY only on 8168-class chips). Default
   * 800 µs: 64 full-size frames at 1 Gb/s.
   */
  txDrainUs?: number;
  /**
   * Send a gratuitous RARP with the guest's MAC from the destination at the
   * end of the restore (QEMU's announce-self), so the switch learns the
   * guest's new port without waiting for the guest. Default true.
   */
  announce?: boolean;
}

/** What restore needs of the destination NIC that no capture can tell: its PHY, link partner and chip ID. */
export interface RtlDestination {
  kind: 'rtl8169-dst';
  bmcr: number;
  anar: number;
  gbcr: number;
  anlpar: number;
  gbsr: number;
  phyStatus: number;
  txConfig: number;
  elapsedUs: number;
}

function isDestination(x: unknown): x is RtlDestination {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'rtl8169-dst';
}

/** The registers a read shows (captured on the paused source before anything else). */
export interface RtlRegSnapshot {
  idr: number[];
  mar: [number, number];
  dtccr: [number, number];
  tnpds: [number, number];
  thpds: [number, number];
  rdsar: [number, number];
  chipCmd: number;
  intrMask: number;
  intrStatus: number;
  txConfig: number;
  rxConfig: number;
  tctr: number;
  rxMissed: number;
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
}

export type IndexMethod = 'probe-hit' | 'probe' | 'memory' | 'lap' | 'guess' | 'unused';

export interface RingCapture {
  /** Guest-physical ring base. */
  base: number;
  /** Descriptors captured (and the probe geometry): the ring length when known. */
  window: number;
  /** Ring length from the EOR bit in memory, when there is one. */
  ringLen: number | null;
  /** The window's bytes as they were at pause. */
  bytes: Uint8Array;
  /** The hidden index. */
  index: number;
  certain: boolean;
  method: IndexMethod;
  /** Frames the derivation sent through the source NIC (loopback). */
  probeFrames: number;
}

export interface RtlCaptureState {
  kind: 'rtl8169';
  v: 1;
  regs: RtlRegSnapshot;
  tx: RingCapture;
  hpq: RingCapture;
  rx: RingCapture;
  scratch: Scratch | null;
  /** Source tally counters at capture (after the probes), for offsets. */
  tally: Tally | null;
  /** PHY register writes from the shadow, in replay order; `lastCmd` is the guest's last PHYAR command. */
  phy: { regs: number[]; values: number[]; lastCmd: number } | null;
  /** Whether the source was left quiesced (rollback() undoes it). */
  quiesced: boolean;
}

// ---------------------------------------------------------------------------
// Constants

/** Dummy RX descriptors announce at most this buffer size (dummy frames are 64–65 bytes with FCS). */
const LANDING_MAX = 256;
/** The longest dummy frame (X1) with its FCS. */
const LANDING_MIN = 65;
const PROBE_ETHERTYPE = 0x88b5; // IEEE 802 local experimental
const MAX_WINDOW_BYTES = MAX_RING_DESCRIPTORS * Desc.BYTES;
/** Upper bound on RxMissed recreated by missed dummy frames (each costs a frame). */
const MAX_MISSED_RECREATE = 4096;
/** A TimeOut crossing the restore may wait for, at most (TCTR ticks at 30 ns: ~5 ms). */
const MAX_TIMEOUT_WAIT_TICKS = 166_000;
const TCTR_NS = 30;
const WAIT_US = 20_000;
const RECREATABLE_INTR = Intr.RxOK | Intr.TxOK | Intr.RxDescUnavail | Intr.TxDescUnavail | Intr.SWInt | Intr.TimeOut;

// ---------------------------------------------------------------------------
// Program building

class Prog {
  readonly ops: IoOp[] = [];
  private reads = 0;
  constructor(private readonly mmio: number) {}
  r(off: number, size: 1 | 2 | 4): number {
    this.ops.push({ op: 'mmioRead', addr: this.mmio + off, size });
    return this.reads++;
  }
  w(off: number, size: 1 | 2 | 4, value: number): this {
    this.ops.push({ op: 'mmioWrite', addr: this.mmio + off, size, value: value >>> 0 });
    return this;
  }
  memRead(addr: number, len: number): number {
    this.ops.push({ op: 'memRead', addr, len });
    return this.reads++;
  }
  memWrite(addr: number, data: Uint8Array): this {
    if (data.length > 0) this.ops.push({ op: 'memWrite', addr, data });
    return this;
  }
  wait(off: number, size: 1 | 2 | 4, mask: number, expect: number, timeoutUs = WAIT_US): this {
    this.ops.push({ op: 'waitUntil', space: 'mmio', addr: this.mmio + off, size, mask, expect, timeoutUs });
    return this;
  }
  /** Clear TDU, kick a queue, wait until the walk has ended (TDU set again). */
  kick(q: number): this {
    this.w(Reg.INTRSTATUS, 2, Intr.TxDescUnavail);
    this.w(Reg.TXPOLL, 1, q);
    return this.wait(Reg.INTRSTATUS, 2, Intr.TxDescUnavail, Intr.TxDescUnavail);
  }
  phyWrite(reg: number, value: number): this {
    this.w(Reg.PHYAR, 4, Phyar.Flag | ((reg & Phyar.RegMask) << Phyar.RegShift) | (value & Phyar.DataMask));
    return this.wait(Reg.PHYAR, 4, Phyar.Flag, 0);
  }
  phyRead(reg: number): number {
    this.w(Reg.PHYAR, 4, (reg & Phyar.RegMask) << Phyar.RegShift);
    this.wait(Reg.PHYAR, 4, Phyar.Flag, Phyar.Flag);
    return this.r(Reg.PHYAR, 4);
  }
}

interface RunTotals {
  programs: number;
  ops: number;
  elapsedUs: number;
}

async function run(acc: DeviceAccess, p: Prog | IoProgram, totals?: RunTotals): Promise<IoResult> {
  const ops = p instanceof Prog ? p.ops : p;
  const res = await acc.run(ops);
  if (totals) {
    totals.programs++;
    totals.ops += ops.length;
    totals.elapsedUs += res.elapsedUs;
  }
  return res;
}

const num = (res: IoResult, i: number) => res.reads[i] as number;
const bytes = (res: IoResult, i: number) => res.reads[i] as Uint8Array;

function deviceError(msg: string, details?: Record<string, unknown>): BaremigError {
  return new BaremigError('DEVICE', `rtl8169: ${msg}`, details);
}

// ---------------------------------------------------------------------------
// Descriptor and frame helpers (pure, exported for tests)

function desc(opts1: number, addr: number): Uint8Array {
  const b = new Uint8Array(Desc.BYTES);
  const v = new DataView(b.buffer);
  v.setUint32(0, opts1 >>> 0, true);
  v.setUint32(8, addr >>> 0, true);
  return b;
}

function opts1At(ring: Uint8Array, i: number): number {
  return new DataView(ring.buffer, ring.byteOffset, ring.byteLength).getUint32(i * Desc.BYTES, true);
}

function addrAt(ring: Uint8Array, i: number): number | null {
  const v = new DataView(ring.buffer, ring.byteOffset, ring.byteLength);
  if (v.getUint32(i * Desc.BYTES + 12, true) !== 0) return null;
  return v.getUint32(i * Desc.BYTES + 8, true);
}

/** Ring length from the first EOR in memory, if any. */
export function ringLenFromEor(ring: Uint8Array): number | null {
  const n = Math.floor(ring.length / Desc.BYTES);
  for (let i = 0; i < n; i++) if (opts1At(ring, i) & Desc.EOR) return i + 1;
  return null;
}

/** TX guess from memory (verified by the probe, so it only has to be good, not right). */
export function txGuess(ring: Uint8Array, n: number): number {
  const own = (i: number) => (opts1At(ring, i) & Desc.OWN) !== 0;
  for (let i = 0; i < n; i++) if (own(i) && !own((i + n - 1) % n)) return i;
  if (n > 0 && own(0)) return 0;
  // Consumed but not reaped: the NIC stopped right after the last of them.
  const done = (i: number) => {
    const o = opts1At(ring, i);
    return !(o & Desc.OWN) && (o & (Desc.FS | Desc.LS)) !== 0 && (o & Desc.TxLenMask) !== 0;
  };
  const ends: number[] = [];
  for (let i = 0; i < n; i++) if (done(i) && !done((i + 1) % n)) ends.push((i + 1) % n);
  return ends.length === 1 ? ends[0]! : 0;
}

/** RX index from memory: the single OWN 0 -> 1 transition, or null when ambiguous. */
export function rxFromMemory(ring: Uint8Array, n: number): number | null {
  const own = (i: number) => (opts1At(ring, i) & Desc.OWN) !== 0;
  let found: number | null = null;
  for (let i = 0; i < n; i++) {
    if (own(i) && !own((i + n - 1) % n)) {
      if (found !== null) return null;
      found = i;
    }
  }
  return found;
}

/**
 * The dummy frames, packed in one 66-byte image so that they need a single
 * scratch region: X = bytes [0, 60) (broadcast: accepted by the restore's
 * broadcast-only filter), X1 = bytes [0, 61) (X one byte longer: marks the
 * first frame of a probe lap), Y = bytes [6, 66) (its destination is X's
 * source address, a locally administered unicast that is not the guest's
 * MAC: rejected).
 */
export const DUMMY_IMAGE_LEN = 66;
export const DUMMY_X = { off: 0, len: ETH_ZLEN } as const;
export const DUMMY_X1 = { off: 0, len: ETH_ZLEN + 1 } as const;
export const DUMMY_Y = { off: 6, len: ETH_ZLEN } as const;

export function dummyImage(idr: ArrayLike<number>): Uint8Array {
  const img = new Uint8Array(DUMMY_IMAGE_LEN);
  img.fill(0xff, 0, 6);
  const src = [0x02, 0x62, 0x6d, 0x69, 0x67, 0x00]; // locally administered "bmig"
  if (src.every((b, i) => b === idr[i])) src[5] = 0x01;
  img.set(src, 6);
  img[12] = PROBE_ETHERTYPE >> 8;
  img[13] = PROBE_ETHERTYPE & 0xff;
  img.set(new TextEncoder().encode('baremig dummy'), 14);
  // Y's own "ethertype" and payload are simply the bytes that follow.
  return img;
}

/** Length of the announcement frame before the NIC pads it to 60 bytes. */
export const ANNOUNCE_LEN = 42;
const ETHERTYPE_RARP = 0x8035;

/**
 * The announcement a migrated NIC sends (QEMU's announce-self): a broadcast
 * RARP "reverse request" with the guest's MAC as sender and target and no
 * addresses. Every switch learns the sender's port from it; hosts ignore it.
 */
export function announceFrame(mac: ArrayLike<number>): Uint8Array {
  const f = new Uint8Array(ANNOUNCE_LEN);
  f.fill(0xff, 0, 6);
  for (let i = 0; i < 6; i++) f[6 + i] = mac[i]!;
  f[12] = ETHERTYPE_RARP >> 8;
  f[13] = ETHERTYPE_RARP & 0xff;
  f.set([0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x03], 14); // Ethernet, IPv4, hlen 6, plen 4, op 3 (reverse request)
  for (let i = 0; i < 6; i++) f[22 + i] = mac[i]!; // sender MAC; sender IP 0
  for (let i = 0; i < 6; i++) f[32 + i] = mac[i]!; // target MAC; target IP 0
  return f;
}

function cyclicRange(from: number, to: number, n: number): number[] {
  const out: number[] = [];
  for (let i = from; i !== to; i = (i + 1) % n) out.push(i);
  return out;
}

/**
 * Guest RAM borrowed for the probes and the restore: where the dummy frames
 * are read from (x, x1, y), where dummy RX frames land, where tallies are
 * dumped. Taken from buffers the guest handed to the NIC, so known to be
 * DMA-able RAM; their bytes are captured first and written back.
 */
export interface Scratch {
  regions: Array<{ addr: number; bytes: Uint8Array }>;
  x: number;
  x1: number;
  y: number;
  landing: number;
  landingSize: number;
  /** 64-byte aligned tally dump area, when one fits. */
  tally: number | null;
}

export interface ScratchCandidate {
  addr: number;
  /** Bytes known to be valid from addr (announced buffer size, or bytes the NIC wrote / read). */
  size: number;
}

/**
 * Places the scratch items into candidate buffers (largest first, bump
 * allocation), avoiding `busy` ranges (the ring windows) and overlapping
 * candidates. Returns the layout and the spans to capture, or null.
 */
export function planScratch(cands: ScratchCandidate[], busy: Array<readonly [number, number]>): { layout: Omit<Scratch, 'regions'>; spans: Array<[number, number]> } | null {
  const free = (a: number, e: number) => busy.every(([s, t]) => e <= s || a >= t);
  const pool: Array<{ addr: number; size: number; used: number }> = [];
  for (const c of [...cands].sort((a, b) => b.size - a.size || a.addr - b.addr)) {
    if (c.size < LANDING_MIN || !Number.isSafeInteger(c.addr) || c.addr < 0) continue;
    if (pool.some((q) => c.addr < q.addr + q.size && q.addr < c.addr + c.size)) continue;
    pool.push({ addr: c.addr, size: c.size, used: 0 });
  }
  const take = (need: number, align: number, max = need): { at: number; len: number } | null => {
    for (const q of pool) {
      const at = Math.ceil((q.addr + q.used) / align) * align;
      const room = q.addr + q.size - at;
      if (room < need) continue;
      const len = Math.min(room, max);
      if (!free(at, at + len)) continue;
      q.used = at + len - q.addr;
      return { at, len };
    }
    return null;
  };
  const frames = take(DUMMY_IMAGE_LEN, 8);
  const landing = take(LANDING_MIN, 8, LANDING_MAX);
  if (!landing || !frames) return null;
  const tally = take(TALLY_BYTES, 64);
  const spans = pool.filter((q) => q.used > 0).map((q) => [q.addr, q.used] as [number, number]);
  return { layout: { x: frames.at + DUMMY_X.off, x1: frames.at + DUMMY_X1.off, y: frames.at + DUMMY_Y.off, landing: landing.at, landingSize: landing.len, tally: tally ? tally.at : null }, spans };
}

// ---------------------------------------------------------------------------

const REG_READS: Array<[keyof RtlRegSnapshot | string, number, 1 | 2 | 4]> = [
  ['idr0', Reg.IDR0, 4],
  ['idr4', Reg.IDR4, 2],
  ['mar0', Reg.MAR0, 4],
  ['mar4', Reg.MAR4, 4],
  ['dtccr0', Reg.DTCCR_LO, 4],
  ['dtccr1', Reg.DTCCR_HI, 4],
  ['tnpds0', Reg.TNPDS_LO, 4],
  ['tnpds1', Reg.TNPDS_HI, 4],
  ['thpds0', Reg.THPDS_LO, 4],
  ['thpds1', Reg.THPDS_HI, 4],
  ['rdsar0', Reg.RDSAR_LO, 4],
  ['rdsar1', Reg.RDSAR_HI, 4],
  ['chipCmd', Reg.CHIPCMD, 1],
  ['intrMask', Reg.INTRMASK, 2],
  ['intrStatus', Reg.INTRSTATUS, 2],
  ['txConfig', Reg.TXCONFIG, 4],
  ['rxConfig', Reg.RXCONFIG, 4],
  ['tctr', Reg.TCTR, 4],
  ['rxMissed', Reg.RXMISSED, 4],
  ['cfg9346', Reg.CFG9346, 1],
  ['config0', Reg.CONFIG0, 1],
  ['config1', Reg.CONFIG1, 1],
  ['config2', Reg.CONFIG2, 1],
  ['config3', Reg.CONFIG3, 1],
  ['config4', Reg.CONFIG4, 1],
  ['config5', Reg.CONFIG5, 1],
  ['timerInt', Reg.TIMERINT, 4],
  ['mulIntr', Reg.MULINTR, 2],
  ['phyar', Reg.PHYAR, 4],
  ['phyStatus', Reg.PHYSTATUS, 1],
  ['rxMaxSize', Reg.RXMAXSIZE, 2],
  ['cplusCmd', Reg.CPLUSCMD, 2],
  ['intrMitigate', Reg.INTRMITIGATE, 2],
  ['earlyTxThres', Reg.EARLYTXTHRES, 1],
];

function snapshotFrom(v: Record<string, number>): RtlRegSnapshot {
  const i0 = v['idr0']!;
  const i4 = v['idr4']!;
  return {
    idr: [i0 & 0xff, (i0 >>> 8) & 0xff, (i0 >>> 16) & 0xff, i0 >>> 24, i4 & 0xff, (i4 >>> 8) & 0xff],
    mar: [v['mar0']!, v['mar4']!],
    dtccr: [v['dtccr0']!, v['dtccr1']!],
    tnpds: [v['tnpds0']!, v['tnpds1']!],
    thpds: [v['thpds0']!, v['thpds1']!],
    rdsar: [v['rdsar0']!, v['rdsar1']!],
    chipCmd: v['chipCmd']!,
    intrMask: v['intrMask']!,
    intrStatus: v['intrStatus']!,
    txConfig: v['txConfig']!,
    rxConfig: v['rxConfig']!,
    tctr: v['tctr']!,
    rxMissed: v['rxMissed']!,
    cfg9346: v['cfg9346']!,
    config: [0, 1, 2, 3, 4, 5].map((n) => v[`config${n}`]!),
    timerInt: v['timerInt']!,
    mulIntr: v['mulIntr']!,
    phyar: v['phyar']!,
    phyStatus: v['phyStatus']!,
    rxMaxSize: v['rxMaxSize']!,
    cplusCmd: v['cplusCmd']!,
    intrMitigate: v['intrMitigate']!,
    earlyTxThres: v['earlyTxThres']!,
  };
}

function ringBase(pair: [number, number]): number {
  if (pair[1] !== 0) throw deviceError(`descriptor ring above 4 GiB (0x${pair[1].toString(16)}${pair[0].toString(16).padStart(8, '0')}) is outside any guest RAM this node has`);
  return pair[0];
}

/** Reads up to maxBytes at base, shrinking when the range runs past the end of RAM. */
async function readWindow(acc: DeviceAccess, base: number, maxBytes: number): Promise<Uint8Array> {
  const tryRead = async (len: number): Promise<Uint8Array | null> => {
    if (len === 0) return new Uint8Array(0);
    try {
      return bytes(await acc.run([{ op: 'memRead', addr: base, len }]), 0);
    } catch (e) {
      if (e instanceof BaremigError && e.code === 'BAD_REQUEST') return null;
      throw e;
    }
  };
  const full = await tryRead(maxBytes);
  if (full) return full;
  let lo = 0; // readable
  let hi = maxBytes / Desc.BYTES; // not readable (descriptors)
  let best: Uint8Array = new Uint8Array(0);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    const r = await tryRead(mid * Desc.BYTES);
    if (r) {
      lo = mid;
      best = r;
    } else hi = mid;
  }
  return best;
}

interface Windows {
  tx: { base: number; bytes: Uint8Array; ringLen: number | null; window: number } | null;
  hpq: { base: number; bytes: Uint8Array; ringLen: number | null; window: number } | null;
  rx: { base: number; bytes: Uint8Array; ringLen: number | null; window: number } | null;
}

export function createRtl8169Reconstructor(cfg: Rtl8169ReconstructorConfig): Reconstructor<RtlCaptureState> {
  const mmio = cfg.mmioBase;

  // ------------------------------------------------------------------ capture

  async function readRegisters(src: DeviceAccess): Promise<RtlRegSnapshot> {
    const p = new Prog(mmio);
    const idx = REG_READS.map(([, off, size]) => p.r(off, size));
    // Quiesce at once: no interrupt line changes while we probe (the guest's
    // PIC must not latch anything), and no frame from the wire is DMA'd into
    // the source's RAM from now on. rollback() undoes both.
    p.w(Reg.INTRMASK, 2, 0);
    p.w(Reg.RXCONFIG, 4, 0);
    const res = await run(src, p);
    const v: Record<string, number> = {};
    REG_READS.forEach(([k], i) => (v[k as string] = num(res, idx[i]!)));
    return snapshotFrom(v);
  }

  async function readRings(src: DeviceAccess, regs: RtlRegSnapshot): Promise<Windows> {
    const bases = { tx: ringBase(regs.tnpds), hpq: ringBase(regs.thpds), rx: ringBase(regs.rdsar) };
    const known = [bases.tx, bases.hpq, bases.rx].filter((b) => b !== 0);
    const out: Windows = { tx: null, hpq: null, rx: null };
    const spans: Array<{ k: 'tx' | 'hpq' | 'rx'; base: number; len: number }> = [];
    for (const k of ['tx', 'hpq', 'rx'] as const) {
      const base = bases[k];
      // A base of 0 means the driver never set the ring: nothing to derive.
      if (base === 0) continue;
      // A ring cannot extend into another ring: bound the window by the next one.
      const next = Math.min(...known.filter((b) => b > base), base + MAX_WINDOW_BYTES);
      spans.push({ k, base, len: Math.floor((next - base) / Desc.BYTES) * Desc.BYTES });
    }
    // All windows in one program; only when one runs past the end of RAM is
    // each read on its own (and shrunk).
    let got: Uint8Array[] | null = null;
    const reads = spans.filter((x) => x.len > 0);
    if (reads.length > 0) {
      try {
        const res = await run(src, reads.map((x) => ({ op: 'memRead' as const, addr: x.base, len: x.len })));
        got = spans.map((x) => (x.len > 0 ? bytes(res, reads.indexOf(x)) : new Uint8Array(0)));
      } catch (e) {
        if (!(e instanceof BaremigError && e.code === 'BAD_REQUEST')) throw e;
      }
    }
    for (const [i, x] of spans.entries()) {
      const b = got ? got[i]! : await readWindow(src, x.base, x.len);
      const ringLen = ringLenFromEor(b);
      const window = ringLen ?? b.length / Desc.BYTES;
      out[x.k] = { base: x.base, bytes: b.subarray(0, window * Desc.BYTES), ringLen, window };
    }
    return out;
  }

  /** Buffers the guest handed to the NIC (so DMA-able RAM): armed RX, filled RX, TX. */
  function scratchCandidates(w: Windows): ScratchCandidate[] {
    const out: ScratchCandidate[] = [];
    const consider = (ring: Windows['rx'], size: (opts1: number) => number) => {
      if (!ring) return;
      for (let i = 0; i < ring.window; i++) {
        const n = size(opts1At(ring.bytes, i));
        const a = addrAt(ring.bytes, i);
        if (a !== null && n > 0) out.push({ addr: a, size: n });
      }
    };
    consider(w.rx, (o) => (o & Desc.OWN ? o & Desc.RxLenMask : 0));
    consider(w.rx, (o) => (!(o & Desc.OWN) && o & Desc.LS ? o & Desc.RxLenMask : 0));
    consider(w.tx, (o) => (o & (Desc.FS | Desc.LS) ? o & Desc.TxLenMask : 0));
    consider(w.hpq, (o) => (o & (Desc.FS | Desc.LS) ? o & Desc.TxLenMask : 0));
    return out;
  }

  async function readScratch(src: DeviceAccess, w: Windows): Promise<Scratch | null> {
    const busy = [w.tx, w.hpq, w.rx].filter((x) => x !== null).map((x) => [x!.base, x!.base + x!.window * Desc.BYTES] as const);
    let cands = scratchCandidates(w);
    for (let attempt = 0; attempt < 8; attempt++) {
      const plan = planScratch(cands, busy);
      if (!plan) return null;
      try {
        const res = await src.run(plan.spans.map(([addr, len]) => ({ op: 'memRead', addr, len })));
        return { ...plan.layout, regions: plan.spans.map(([addr], i) => ({ addr, bytes: bytes(res, i) })) };
      } catch (e) {
        if (!(e instanceof BaremigError && e.code === 'BAD_REQUEST')) throw e;
        // A candidate lies outside RAM (a driver's poisoned address): drop the spans' buffers one by one.
        const bad = new Set<number>();
        for (const [addr, len] of plan.spans) {
          try {
            await src.run([{ op: 'memRead', addr, len }]);
          } catch {
            bad.add(addr);
          }
        }
        cands = cands.filter((c) => !bad.has(c.addr));
      }
    }
    return null;
  }

  /** Dummy TX ring for the probe: all OWN = 1 except `hole`, EOR on the last slot, every buffer Y. */
  function txProbeRing(window: number, owned: (i: number) => boolean, frameAddr: number): Uint8Array {
    const b = new Uint8Array(window * Desc.BYTES);
    for (let i = 0; i < window; i++) {
      const eor = i === window - 1 ? Desc.EOR : 0;
      b.set(desc(owned(i) ? Desc.OWN | Desc.FS | Desc.LS | ETH_ZLEN | eor : eor, frameAddr), i * Desc.BYTES);
    }
    return b;
  }

  function unusedRing(): RingCapture {
    return { base: 0, window: 0, ringLen: null, bytes: new Uint8Array(0), index: 0, certain: false, method: 'unused', probeFrames: 0 };
  }

  async function capture(src: DeviceAccess): Promise<RtlCaptureState> {
    const startedMs = performance.now();
    // The shadow and the registers are independent: one round trip for both.
    const [logR, regsR] = await Promise.allSettled([src.shadow(), readRegisters(src)]);
    if (logR.status === 'rejected') {
      if (regsR.status === 'fulfilled') {
        const r = regsR.value;
        await run(src, new Prog(mmio).w(Reg.RXCONFIG, 4, r.rxConfig).w(Reg.INTRMASK, 2, r.intrMask)).catch(() => undefined);
      }
      throw logR.reason;
    }
    if (regsR.status === 'rejected') throw regsR.reason;
    const regs = regsR.value;
    const shadow = rtlShadowFrom(logR.value, cfg.device);
    const restoreQuiesce = async () => {
      await run(src, new Prog(mmio).w(Reg.RXCONFIG, 4, regs.rxConfig).w(Reg.INTRMASK, 2, regs.intrMask));
    };
    let w: Windows;
    let scratch: Scratch | null;
    try {
      w = await readRings(src, regs);
      scratch = await readScratch(src, w);
    } catch (e) {
      await restoreQuiesce().catch(() => undefined);
      throw e;
    }
    const txOn = (regs.chipCmd & ChipCmd.TxEnb) !== 0;
    const rxOn = (regs.chipCmd & ChipCmd.RxEnb) !== 0;

    const ring = (x: Windows['tx']): RingCapture => (x ? { base: x.base, window: x.window, ringLen: x.ringLen, bytes: Uint8Array.from(x.bytes), index: 0, certain: false, method: 'guess', probeFrames: 0 } : unusedRing());
    const tx = ring(w.tx);
    const hpq = ring(w.hpq);
    const rx = ring(w.rx);
    for (const q of [tx, hpq]) if (q.window > 0) q.index = txGuess(q.bytes, q.window);
    if (rx.window > 0) {
      const m = rx.ringLen !== null ? rxFromMemory(rx.bytes, rx.window) : null;
      if (m !== null) {
        rx.index = m;
        rx.certain = true;
        rx.method = 'memory';
      }
    }
    for (const q of [tx, hpq]) if (q.window === 1) Object.assign(q, { index: 0, certain: true, method: 'memory' });

    const needTxProbe = [tx, hpq].filter((q) => q.window > 1 && txOn);
    const needRxLap = rx.window > 0 && !rx.certain && rxOn && txOn && tx.window > 0;
    if ((needTxProbe.length > 0 || needRxLap) && !scratch) {
      await restoreQuiesce().catch(() => undefined);
      throw deviceError('no guest buffer known to be DMA-able to borrow as scratch for the probes');
    }

    const image = dummyImage(regs.idr);
    const generated = { bits: 0 };
    const S = scratch;
    const repair = async () => {
      // Best effort after a failure: guest memory and registers back. A probe
      // program returns its TX queue to its index itself, so nothing is left
      // moved between programs.
      const p = new Prog(mmio);
      for (const q of [tx, hpq, rx]) if (q.window > 0) p.memWrite(q.base, q.bytes);
      if (S) for (const g of S.regions) p.memWrite(g.addr, g.bytes);
      const clear = generated.bits & ~regs.intrStatus & INTR_IMPLEMENTED;
      if (clear) p.w(Reg.INTRSTATUS, 2, clear);
      p.w(Reg.TXCONFIG, 4, regs.txConfig).w(Reg.RXCONFIG, 4, regs.rxConfig).w(Reg.INTRMASK, 2, regs.intrMask);
      await run(src, p);
    };
    /** Loopback on, dummy image in the scratch; after what the guest's last kick may still send has gone. */
    const enterLoopback = (p: Prog) => {
      // The drain counts from the pause, which came before this capture
      // started: only what has not passed yet is waited for.
      const drain = (cfg.txDrainUs ?? 800) - (performance.now() - startedMs) * 1000;
      if (drain > 0) p.ops.push({ op: 'delay', us: Math.ceil(drain) });
      p.memWrite(S!.x, image);
      p.w(Reg.TXCONFIG, 4, (regs.txConfig & ~TxCfg.LoopbackMask) | TxCfg.LoopbackMac);
    };
    /** Tally dump, the guest's bytes and registers back, generated IntrStatus bits cleared. Returns the tally read. */
    const finish = (p: Prog): number => {
      let tallyRead = -1;
      if (S && S.tally !== null) {
        // Source tally counters, dumped into scratch (the guest's DTCCR address is put back).
        p.w(Reg.DTCCR_HI, 4, 0).w(Reg.DTCCR_LO, 4, S.tally | Dtccr.Cmd).wait(Reg.DTCCR_LO, 4, Dtccr.Cmd, 0);
        tallyRead = p.memRead(S.tally, TALLY_BYTES);
        p.w(Reg.DTCCR_HI, 4, regs.dtccr[1]).w(Reg.DTCCR_LO, 4, regs.dtccr[0] & ~Dtccr.Cmd);
      }
      for (const q of [tx, hpq, rx]) if (q.window > 0) p.memWrite(q.base, q.bytes);
      if (S) for (const g of S.regions) p.memWrite(g.addr, g.bytes);
      p.w(Reg.TXCONFIG, 4, regs.txConfig);
      const clear = generated.bits & ~regs.intrStatus & INTR_IMPLEMENTED;
      if (clear) p.w(Reg.INTRSTATUS, 2, clear);
      return tallyRead;
    };

    try {
      // ---- C3: TX probes (NPQ, HPQ), in MAC loopback with the RX filter
      // closed, each returning its queue to its index within the program;
      // when no RX lap is needed, everything is put back in the same program.
      const p = new Prog(mmio);
      const probes: Array<{ q: RingCapture; g: number; read: number; back: number }> = [];
      if (needTxProbe.length > 0) enterLoopback(p);
      for (const q of needTxProbe) {
        const g = q.index;
        const kick = q === tx ? TxPoll.NPQ : TxPoll.HPQ;
        p.memWrite(q.base, txProbeRing(q.window, (i) => i !== g, S!.y));
        p.kick(kick);
        const read = p.memRead(q.base, q.window * Desc.BYTES);
        // The NIC consumed the run [t, g) and waits at g, every other slot
        // still owned: owning g too leaves exactly [g, t) owned, so a second
        // kick brings it back to t without our knowing t (a hit, t = g, is
        // then one full lap).
        p.memWrite(q.base + g * Desc.BYTES, desc(Desc.OWN | Desc.FS | Desc.LS | ETH_ZLEN | (g === q.window - 1 ? Desc.EOR : 0), S!.y));
        p.kick(kick);
        probes.push({ q, g, read, back: p.memRead(q.base, q.window * Desc.BYTES) });
        generated.bits |= Intr.TxDescUnavail | Intr.TxOK;
      }
      let tallyRead = needRxLap ? -1 : finish(p);
      let res: IoResult = { reads: [], elapsedUs: 0 };
      if (p.ops.length > 0) res = await run(src, p);
      for (const pr of probes) {
        const after = bytes(res, pr.read);
        const n = pr.q.window;
        const consumed = (i: number) => i !== pr.g && !(opts1At(after, i) & Desc.OWN);
        const starts: number[] = [];
        for (let i = 0; i < n; i++) if (consumed(i) && !consumed((i + n - 1) % n)) starts.push(i);
        if (starts.length === 0) {
          pr.q.method = 'probe-hit';
        } else {
          const t = starts[0]!;
          const expect = cyclicRange(t, pr.g, n);
          const got = Array.from({ length: n }, (_, i) => i).filter(consumed);
          if (starts.length !== 1 || got.length !== expect.length) {
            throw deviceError('TX probe: the NIC consumed descriptors outside one run', { consumed: got, guess: pr.g });
          }
          pr.q.index = t;
          pr.q.method = 'probe';
        }
        const back = bytes(res, pr.back);
        for (let i = 0; i < n; i++) {
          if (opts1At(back, i) & Desc.OWN) throw deviceError('TX probe: the NIC did not return to its slot', { slot: i, index: pr.q.index });
        }
        pr.q.probeFrames = n; // (g - t) and (t - g): one lap
        pr.q.certain = true;
      }

      // ---- C4: the RX lap (needs t), then everything back.
      if (needRxLap) {
        const p = new Prog(mmio);
        if (needTxProbe.length === 0) enterLoopback(p);
        const t = tx.index;
        const n = rx.window;
        const ringImg = new Uint8Array(n * Desc.BYTES);
        for (let i = 0; i < n; i++) ringImg.set(desc(Desc.OWN | (i === n - 1 ? Desc.EOR : 0) | S!.landingSize, S!.landing), i * Desc.BYTES);
        p.memWrite(rx.base, ringImg);
        p.w(Reg.RXCONFIG, 4, (regs.rxConfig & RxCfg.Writable & ~RxCfg.AcceptMask) | RxCfg.AcceptBroadcast);
        // TX loop [0..t] with EOR on t: consumption order t, 0, 1, ..., t-1, back at t.
        const loop = t + 1;
        let lapFrames = 0;
        for (let sent = 0; sent < n; sent += loop) {
          const img = new Uint8Array(loop * Desc.BYTES);
          for (let j = 0; j < loop; j++) {
            const slot = j === 0 ? t : j - 1;
            const pos = sent + j;
            const f = pos === 0 ? { a: S!.x1, len: DUMMY_X1.len } : pos < n ? { a: S!.x, len: DUMMY_X.len } : { a: S!.y, len: DUMMY_Y.len };
            img.set(desc(Desc.OWN | Desc.FS | Desc.LS | f.len | (slot === t ? Desc.EOR : 0), f.a), slot * Desc.BYTES);
          }
          p.memWrite(tx.base, img);
          p.kick(TxPoll.NPQ);
          lapFrames += loop;
        }
        p.w(Reg.RXCONFIG, 4, 0);
        const lapRead = p.memRead(rx.base, n * Desc.BYTES);
        generated.bits |= Intr.RxOK | Intr.TxOK | Intr.TxDescUnavail;
        tallyRead = finish(p);
        res = await run(src, p);
        const after = bytes(res, lapRead);
        const marker = DUMMY_X1.len + 4;
        const hits: number[] = [];
        for (let i = 0; i < rx.window; i++) {
          const o = opts1At(after, i);
          if (o & Desc.OWN) throw deviceError('RX probe lap: a descriptor was not filled', { slot: i });
          if ((o & Desc.RxLenMask) === marker) hits.push(i);
        }
        if (hits.length !== 1) throw deviceError('RX probe lap: first frame not found exactly once', { hits });
        rx.index = hits[0]!;
        rx.certain = true;
        rx.method = 'lap';
        rx.probeFrames = rx.window;
        tx.probeFrames += lapFrames;
      }
      const tally = tallyRead >= 0 ? decodeTally(bytes(res, tallyRead)) : null;
      return {
        kind: 'rtl8169',
        v: 1,
        regs,
        tx,
        hpq,
        rx,
        scratch,
        tally,
        phy: shadow ? phyFromShadow(shadow) : null,
        quiesced: true,
      };
    } catch (e) {
      await repair().catch(() => undefined);
      throw e;
    }
  }

  // ------------------------------------------------------------------ restore

  /** P0: the destination PHY and its link partner, and the chip's ID (reads only; needs nothing captured). */
  async function prepare(dst: DeviceAccess): Promise<RtlDestination> {
    const p0 = new Prog(mmio);
    const rd = { bmcr: p0.phyRead(Mii.BMCR), anar: p0.phyRead(Mii.ANAR), gbcr: p0.phyRead(Mii.GBCR), anlpar: p0.phyRead(Mii.ANLPAR), gbsr: p0.phyRead(Mii.GBSR), status: p0.r(Reg.PHYSTATUS, 1), txcfg: p0.r(Reg.TXCONFIG, 4) };
    const r0 = await run(dst, p0);
    const d = (i: number) => num(r0, i) & Phyar.DataMask;
    return { kind: 'rtl8169-dst', bmcr: d(rd.bmcr), anar: d(rd.anar), gbcr: d(rd.gbcr), anlpar: d(rd.anlpar), gbsr: d(rd.gbsr), phyStatus: num(r0, rd.status), txConfig: num(r0, rd.txcfg), elapsedUs: r0.elapsedUs };
  }

  async function restore(dst: DeviceAccess, s: RtlCaptureState, prepared?: unknown): Promise<RestoreReport> {
    if (s.kind !== 'rtl8169' || s.v !== 1) throw new BaremigError('BAD_REQUEST', 'rtl8169: not an rtl8169 capture');
    const totals: RunTotals = { programs: 0, ops: 0, elapsedUs: 0 };
    const R = s.regs;
    const extra: Record<string, number> = {};

    // ---- P0: the destination PHY and its link partner (reads only), unless
    // read already beside the capture (prepare()).
    let D: RtlDestination;
    if (isDestination(prepared)) {
      D = prepared;
      extra['prepared'] = 1;
    } else {
      D = await prepare(dst);
      totals.programs++;
      totals.ops += 7;
      totals.elapsedUs += D.elapsedUs;
    }
    if ((D.txConfig & TxCfg.HwIdMask) !== (R.txConfig & TxCfg.HwIdMask)) extra['chipMismatch'] = 1;
    let restartAn = false;
    const phyVal = (reg: number, fallback: number) => {
      if (!s.phy) return fallback;
      const k = s.phy.regs.indexOf(reg);
      return k >= 0 ? s.phy.values[k]! : fallback;
    };
    if (s.phy) {
      const bmcr = phyVal(Mii.BMCR, D.bmcr);
      const mode = negotiateMii(bmcr, phyVal(Mii.ANAR, D.anar), phyVal(Mii.GBCR, D.gbcr), D.anlpar, D.gbsr);
      const want = phyStatusFor(mode);
      const LINK_BITS = 0x1f;
      const destNow = D.phyStatus & LINK_BITS;
      // Renegotiate when the destination's link is not what the guest's
      // advertisement gives here, or differs from what the guest saw (the
      // guest then learns of it through LinkChg).
      restartAn = destNow !== want || (R.phyStatus & LINK_BITS) !== want;
    }
    extra['phyRenegotiated'] = restartAn ? 1 : 0;

    // ---- P1: everything else.
    const p = new Prog(mmio);
    const t = s.tx.index;
    const r = s.rx.index;
    const h = s.hpq.index;
    let dummy = 0;
    let kicked = false;

    // 1. Reset: indices, IntrMask and IntrStatus to 0 [reference].
    p.w(Reg.CHIPCMD, 1, ChipCmd.Reset).wait(Reg.CHIPCMD, 1, ChipCmd.Reset, 0, 100_000);
    p.w(Reg.INTRMASK, 2, 0);

    // 2. PHY: the guest's writes, BMCR last (without self-clearing bits unless renegotiating).
    if (s.phy) {
      for (let k = 0; k < s.phy.regs.length; k++) if (s.phy.regs[k] !== Mii.BMCR) p.phyWrite(s.phy.regs[k]!, s.phy.values[k]!);
      const bmcr = phyVal(Mii.BMCR, D.bmcr) & ~Bmcr.SelfClearing;
      p.phyWrite(Mii.BMCR, restartAn && bmcr & Bmcr.AnEnable ? bmcr | Bmcr.AnRestart : bmcr);
    }

    // 3. Registers in the driver-safe order [LNX rtl_hw_start, FBSD re_init_locked].
    p.w(Reg.CFG9346, 1, Cfg9346.Unlock);
    p.w(Reg.CPLUSCMD, 2, R.cplusCmd);
    for (let n = 1; n <= 5; n++) p.w(Reg.CONFIG0 + n, 1, R.config[n]!);
    p.w(Reg.IDR0, 4, R.idr[0]! | (R.idr[1]! << 8) | (R.idr[2]! << 16) | (R.idr[3]! << 24));
    p.w(Reg.IDR4, 2, R.idr[4]! | (R.idr[5]! << 8));
    p.w(Reg.RXMAXSIZE, 2, R.rxMaxSize);
    // Ring bases always rewritten: whether they survive a reset is unverified.
    p.w(Reg.TNPDS_HI, 4, R.tnpds[1]).w(Reg.TNPDS_LO, 4, R.tnpds[0]);
    p.w(Reg.THPDS_HI, 4, R.thpds[1]).w(Reg.THPDS_LO, 4, R.thpds[0]);
    p.w(Reg.RDSAR_HI, 4, R.rdsar[1]).w(Reg.RDSAR_LO, 4, R.rdsar[0]);
    p.w(Reg.CFG9346, 1, Cfg9346.Lock);
    p.w(Reg.EARLYTXTHRES, 1, R.earlyTxThres).w(Reg.INTRMITIGATE, 2, R.intrMitigate).w(Reg.MULINTR, 2, R.mulIntr);
    p.w(Reg.TIMERINT, 4, 0).w(Reg.TCTR, 4, 0).w(Reg.RXMISSED, 4, 0);

    // 4. Engines on, MAC loopback, broadcast-only filter (X accepted, Y rejected).
    p.w(Reg.CHIPCMD, 1, ChipCmd.TxEnb | ChipCmd.RxEnb);
    p.w(Reg.RXCONFIG, 4, (R.rxConfig & ~RxCfg.AcceptMask) | RxCfg.AcceptBroadcast);
    p.w(Reg.TXCONFIG, 4, (R.txConfig & ~TxCfg.LoopbackMask) | TxCfg.LoopbackMac);

    const S = s.scratch;
    const S_isr = R.intrStatus & INTR_IMPLEMENTED;
    const wantMissed = R.rxMissed;
    const missedFrames = S_isr & Intr.RxDescUnavail ? Math.max(1, Math.min(wantMissed, MAX_MISSED_RECREATE)) : Math.min(wantMissed, MAX_MISSED_RECREATE);
    const needRxLanding = r > 0 || (S_isr & Intr.RxOK) !== 0;
    const needTx = t > 0 || h > 0 || needRxLanding || missedFrames > 0 || (S_isr & (Intr.TxOK | Intr.TxDescUnavail)) !== 0;
    if (needTx && !S) throw deviceError('restore needs scratch memory, the capture has none');
    if (S) p.memWrite(S.x, dummyImage(R.idr));

    // 5. RX to r (and RxOK, RxDescUnavail, RxMissed) and TX to t by ONE
    // stream of dummy frames: accepted ones (X) land in the RX ring, the
    // others (Y) are rejected, and every one of them advances TX. So the
    // frames are max(accepted, t), not their sum. The RX ring: [0, r) owned
    // landing slots and slot r unowned, so exactly r frames land and any
    // further accepted frame is missed (RxMissed, RxDescUnavail); for RxOK
    // with r = 0 one slot with EOR, filled once and then unowned.
    let accepted = 0;
    if (s.rx.window > 0 && S) {
      const landing = S.landing;
      if (r > 0) {
        const img = new Uint8Array((r + 1) * Desc.BYTES);
        for (let i = 0; i < r; i++) img.set(desc(Desc.OWN | S.landingSize, landing), i * Desc.BYTES);
        p.memWrite(s.rx.base, img); // slot r stays unowned (zeroed)
        accepted = r;
      } else if (S_isr & Intr.RxOK) {
        p.memWrite(s.rx.base, desc(Desc.OWN | Desc.EOR | S.landingSize, landing));
        accepted = 1;
      } else if (missedFrames > 0) p.memWrite(s.rx.base, new Uint8Array(Desc.BYTES)); // unowned: frames are missed
      accepted += missedFrames;
    }
    extra['rxMissedGenerated'] = s.rx.window > 0 ? missedFrames : 0;
    if (accepted > 0 && s.tx.window === 0) {
      // No TX ring to send dummies through: this part of the state is not recreated.
      extra['rxNotAdvanced'] = 1;
      accepted = 0;
    }
    // The announcement (gratuitous RARP with the guest's MAC, as QEMU's
    // announce-self) is the last frame that advances TX, sent with loopback
    // off: the switch learns the guest's new port before the guest runs.
    // Only on a link that is up and stays up, and not for a guest that keeps
    // its NIC in loopback.
    const linkUp = (D.phyStatus & 0x02) !== 0 && !restartAn;
    const announce = (cfg.announce ?? true) && s.tx.window > 0 && S !== null && linkUp && (R.txConfig & TxCfg.LoopbackMask) === 0 && (R.chipCmd & ChipCmd.TxEnb) !== 0;
    const runLb = announce ? Math.max(t - 1, 0) : t; // frames of the final run sent in loopback
    let loops = Math.max(0, accepted - runLb);
    if (S_isr & Intr.TxOK && loops + runLb === 0 && !announce && s.tx.window > 0) loops = 1;
    // TX loops at index 0: slots [0, k) with EOR on k-1 bring the index back to 0.
    const loopMax = s.tx.ringLen ?? t + 1;
    let acceptLeft = accepted;
    const frameFor = (): { a: number; len: number } => (acceptLeft-- > 0 ? { a: S!.x, len: DUMMY_X.len } : { a: S!.y, len: DUMMY_Y.len });
    for (let left = loops; left > 0; ) {
      const k = Math.min(left, loopMax);
      const img = new Uint8Array(k * Desc.BYTES);
      for (let j = 0; j < k; j++) {
        const f = frameFor();
        img.set(desc(Desc.OWN | Desc.FS | Desc.LS | f.len | (j === k - 1 ? Desc.EOR : 0), f.a), j * Desc.BYTES);
      }
      p.memWrite(s.tx.base, img);
      p.kick(TxPoll.NPQ);
      kicked = true;
      dummy += k;
      left -= k;
    }

    // 6. TX (and HPQ) to their indices: the final run [0, t) (its last frame
    // the announcement), slot t unowned.
    const txAdvance: Array<{ n: number; kick: number; read: number }> = [];
    if (runLb > 0 && s.tx.window > 0) {
      const img = new Uint8Array((runLb + 1) * Desc.BYTES);
      for (let i = 0; i < runLb; i++) {
        const f = frameFor();
        img.set(desc(Desc.OWN | Desc.FS | Desc.LS | f.len, f.a), i * Desc.BYTES);
      }
      p.memWrite(s.tx.base, img);
      p.kick(TxPoll.NPQ);
      kicked = true;
      dummy += runLb;
      txAdvance.push({ n: runLb, kick: TxPoll.NPQ, read: p.memRead(s.tx.base, runLb * Desc.BYTES) });
    }
    if (h > 0 && s.hpq.window > 0) {
      const img = new Uint8Array((h + 1) * Desc.BYTES);
      for (let i = 0; i < h; i++) img.set(desc(Desc.OWN | Desc.FS | Desc.LS | ETH_ZLEN, S!.y), i * Desc.BYTES);
      p.memWrite(s.hpq.base, img);
      p.kick(TxPoll.HPQ);
      kicked = true;
      dummy += h;
      txAdvance.push({ n: h, kick: TxPoll.HPQ, read: p.memRead(s.hpq.base, h * Desc.BYTES) });
    }
    let announceRead = -1;
    if (announce) {
      // Filter closed first: with loopback off, frames from the wire must not reach the dummy RX ring.
      p.w(Reg.RXCONFIG, 4, R.rxConfig & ~RxCfg.AcceptMask);
      p.memWrite(S!.x, announceFrame(R.idr));
      const slot = t > 0 ? t - 1 : 0;
      const img = new Uint8Array((t > 0 ? 2 : 1) * Desc.BYTES); // t > 0: slot t unowned after it
      img.set(desc(Desc.OWN | Desc.FS | Desc.LS | ANNOUNCE_LEN | (t > 0 ? 0 : Desc.EOR), S!.x), 0);
      p.memWrite(s.tx.base + slot * Desc.BYTES, img);
      p.w(Reg.TXCONFIG, 4, R.txConfig & ~TxCfg.LoopbackMask);
      p.kick(TxPoll.NPQ);
      p.w(Reg.TXCONFIG, 4, (R.txConfig & ~TxCfg.LoopbackMask) | TxCfg.LoopbackMac);
      kicked = true;
      dummy += 1;
      announceRead = p.memRead(s.tx.base + slot * Desc.BYTES, Desc.BYTES);
    }
    extra['announced'] = announce ? 1 : 0;
    if (S_isr & Intr.TxDescUnavail && !kicked && s.tx.window > 0) {
      p.memWrite(s.tx.base + t * Desc.BYTES, new Uint8Array(Desc.BYTES));
      p.kick(TxPoll.NPQ);
    }
    if (S_isr & Intr.SWInt) p.w(Reg.TXPOLL, 1, TxPoll.FSWInt);

    // 7. Destination tally (for offsets), before the scratch is put back.
    let tallyRead = -1;
    if (S && S.tally !== null) {
      p.w(Reg.DTCCR_HI, 4, 0).w(Reg.DTCCR_LO, 4, S.tally | Dtccr.Cmd).wait(Reg.DTCCR_LO, 4, Dtccr.Cmd, 0);
      tallyRead = p.memRead(S.tally, TALLY_BYTES);
    }

    // 8. The guest's ring bytes and the borrowed scratch, exactly as at pause.
    for (const q of [s.tx, s.hpq, s.rx]) if (q.window > 0) p.memWrite(q.base, q.bytes);
    if (S) for (const g of S.regions) p.memWrite(g.addr, g.bytes);

    // 9. Final registers.
    p.w(Reg.MAR0, 4, R.mar[0]).w(Reg.MAR4, 4, R.mar[1]);
    p.w(Reg.RXCONFIG, 4, R.rxConfig);
    p.w(Reg.TXCONFIG, 4, R.txConfig); // the guest's loopback bits
    const en = R.chipCmd & (ChipCmd.TxEnb | ChipCmd.RxEnb);
    if (en !== (ChipCmd.TxEnb | ChipCmd.RxEnb)) p.w(Reg.CHIPCMD, 1, en);
    p.w(Reg.DTCCR_HI, 4, R.dtccr[1]).w(Reg.DTCCR_LO, 4, R.dtccr[0] & ~Dtccr.Cmd);
    // PHYAR shows the guest's last PHY command: repeat it (reads always; writes unless they act).
    // Which kind it was: the shadow saw the command (Flag as written: 1 = write);
    // PHYAR alone is ambiguous while a command is in flight, so without a
    // shadow a set Flag is taken as a completed read.
    if (R.phyar !== 0) {
      const cmd = s.phy ? s.phy.lastCmd : R.phyar & Phyar.Flag ? R.phyar & ~Phyar.Flag : R.phyar | Phyar.Flag;
      const reg = (cmd >>> Phyar.RegShift) & Phyar.RegMask;
      if (!(cmd & Phyar.Flag)) p.phyRead(reg);
      else if (reg !== Mii.BMCR || !(cmd & Bmcr.SelfClearing)) p.phyWrite(reg, cmd & Phyar.DataMask);
      else extra['phyarNotRecreated'] = 1;
    }
    const mode = R.cfg9346 & Cfg9346.ModeMask;
    p.w(Reg.CFG9346, 1, mode === Cfg9346.Unlock ? R.cfg9346 : R.cfg9346 & ~Cfg9346.ModeMask);
    // Timer: TCTR cannot be preset (it restarts from 0).
    if (S_isr & Intr.TimeOut) {
      p.w(Reg.TIMERINT, 4, 2).w(Reg.TCTR, 4, 0).wait(Reg.INTRSTATUS, 2, Intr.TimeOut, Intr.TimeOut);
    }
    p.w(Reg.TCTR, 4, 0).w(Reg.TIMERINT, 4, R.timerInt);
    if (R.timerInt !== 0 && R.tctr >= R.timerInt) {
      // The source's counter had passed TimerInt: its next TimeOut is a 2^32-tick wrap away.
      // Let the destination's crossing happen now, so it does not fire later.
      if (R.timerInt <= MAX_TIMEOUT_WAIT_TICKS) {
        p.wait(Reg.INTRSTATUS, 2, Intr.TimeOut, Intr.TimeOut, Math.ceil((R.timerInt * TCTR_NS) / 1000) + WAIT_US);
      } else extra['spuriousTimeOutExpected'] = 1;
    }
    if (missedFrames !== wantMissed || s.rx.window === 0) p.w(Reg.RXMISSED, 4, 0);
    // Clear every bit the source did not have. Link events of a renegotiation
    // the restore started are the guest's to see (they say the link changed).
    p.w(Reg.INTRSTATUS, 2, ~S_isr & ~(restartAn ? Intr.LinkChg : 0) & 0xffff);
    p.w(Reg.INTRMASK, 2, R.intrMask); // last
    const fin = { isr: p.r(Reg.INTRSTATUS, 2), missed: p.r(Reg.RXMISSED, 4), tctr: p.r(Reg.TCTR, 4) };

    const res = await run(dst, p, totals);
    for (const a of txAdvance) {
      const after = bytes(res, a.read);
      for (let i = 0; i < a.n; i++) {
        if (opts1At(after, i) & Desc.OWN) throw deviceError('restore: TX dummy descriptors were not consumed', { slot: i, queue: a.kick === TxPoll.NPQ ? 'npq' : 'hpq' });
      }
    }
    if (announceRead >= 0 && opts1At(bytes(res, announceRead), 0) & Desc.OWN) throw deviceError('restore: the announcement was not sent');
    const lost = S_isr & ~RECREATABLE_INTR;
    const isr = num(res, fin.isr);
    extra['dummyFrames'] = dummy;
    extra['txAdvance'] = t;
    extra['rxAdvance'] = r;
    extra['hpqAdvance'] = h;
    extra['lostIntrBits'] = lost;
    extra['intrStatusMismatch'] = (isr & ~Intr.LinkChg) !== (S_isr & RECREATABLE_INTR & ~Intr.LinkChg) ? 1 : 0;
    extra['rxMissedOffset'] = R.rxMissed - num(res, fin.missed);
    extra['tctrOffset'] = R.tctr - num(res, fin.tctr);
    extra['txIndexCertain'] = s.tx.certain || s.tx.window === 0 ? 1 : 0;
    extra['rxIndexCertain'] = s.rx.certain || s.rx.window === 0 ? 1 : 0;
    if (tallyRead >= 0 && s.tally) {
      const dt = decodeTally(bytes(res, tallyRead));
      for (const f of TALLY_FIELDS) extra[`tallyOffset.${f}`] = s.tally[f] - dt[f];
    }
    return { programs: totals.programs, ops: totals.ops, elapsedUs: totals.elapsedUs, extra };
  }

  async function rollback(src: DeviceAccess, s: RtlCaptureState): Promise<void> {
    if (!s.quiesced) return;
    // Undo the quiesce: the guest's filter and mask again. Memory, indices
    // and the other registers were put back by capture itself.
    await run(src, new Prog(mmio).w(Reg.RXCONFIG, 4, s.regs.rxConfig).w(Reg.INTRMASK, 2, s.regs.intrMask));
  }

  return { kind: 'rtl8169', capture, prepare, restore, rollback };
}

function phyFromShadow(sh: RtlShadow): { regs: number[]; values: number[]; lastCmd: number } {
  const regs: number[] = [];
  const values: number[] = [];
  for (const reg of sh.phyOrder) {
    const v = sh.phy[reg];
    if (v === null || v === undefined) continue;
    regs.push(reg);
    values.push(v);
  }
  return { regs, values, lastCmd: sh.phyar };
}
