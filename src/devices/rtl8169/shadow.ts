/**
 * The hypervisor's shadow of the RTL8169's write-only state.
 *
 * Almost everything the reconstructor needs is readable (registers by MMIO,
 * rings in guest memory, the hidden indices by probing). What no read shows:
 *
 * - the PHY's register writes: PHYAR is a command register, and PHY reads
 *   on the paused source would disturb PHYAR's latched value; vendor PHY
 *   registers may not read back what was written. The shadow keeps the last
 *   value written to each MII register since the last PHY reset, in order.
 * - TxPoll: write-only triggers. Whether the high-priority queue was ever
 *   kicked since the last CmdReset, and how often FSWInt was used.
 * - ChipCmd writes (resets seen) and DTCCR writes (tally dumps requested).
 *
 * Which writes are trapped: in normal operation the hypervisor intercepts
 * only the rare registers — ChipCmd (0x37: reset and enables, at driver
 * start/stop), PHYAR (0x60: link management), DTCCR (0x10–0x17: statistics
 * dumps). The NIC's hot path — TxPoll NPQ kicks, IntrMask/IntrStatus
 * traffic, descriptor memory — is NOT trapped (that would cost an exit per
 * packet). TxPoll entries are therefore best effort: they reach this reducer
 * only where the hypervisor does see TxPoll (the simulator's bus traps per
 * register), NPQ kicks carry no state (their effect is in descriptor memory),
 * and the reconstructor never relies on the TxPoll fields.
 *
 * The reducer is pure and bounded: fixed-size arrays and saturating counters,
 * JSON-serializable, so the agent can ship it as is.
 */
import { Bmcr, ChipCmd, Dtccr, Mii, Phyar, Reg, TxPoll } from './registers.js';

/** Key of this device's entry in the ShadowLog. */
export const RTL_SHADOW_KEY = 'rtl8169';

export interface RtlShadow {
  v: 1;
  /** Last value written to ChipCmd, -1 when never. */
  chipCmd: number;
  /** CmdReset writes seen (saturating). */
  resets: number;
  txPoll: { npq: number; hpq: number; fswint: number; hpqSinceReset: boolean };
  /** PHYAR as written, byte by byte (a command starts when byte 3 is written). */
  phyar: number;
  /** Last value written to each MII register since the last PHY reset; self-clearing BMCR bits removed. */
  phy: Array<number | null>;
  /** Registers in `phy`, in the order of their last write (replay order). */
  phyOrder: number[];
  /** PHY write commands seen (saturating). */
  phyWrites: number;
  /** DTCCR as written (low, high dword). */
  dtccr: [number, number];
  /** Tally dumps requested (saturating). */
  dumps: number;
}

export interface RtlMmioAccess {
  kind: 'mmioWrite' | 'mmioRead';
  /** Offset within the NIC's BAR. */
  offset: number;
  size: 1 | 2 | 4;
  value: number;
}

const SAT = 0x7fffffff;
const inc = (n: number) => (n >= SAT ? SAT : n + 1);

export function initialRtlShadow(): RtlShadow {
  return {
    v: 1,
    chipCmd: -1,
    resets: 0,
    txPoll: { npq: 0, hpq: 0, fswint: 0, hpqSinceReset: false },
    phyar: 0,
    phy: new Array<number | null>(32).fill(null),
    phyOrder: [],
    phyWrites: 0,
    dtccr: [0, 0],
    dumps: 0,
  };
}

function setByte(v: number, byteIndex: number, b: number): number {
  const sh = 8 * byteIndex;
  return ((v & ~(0xff << sh)) | (b << sh)) >>> 0;
}

/** Folds one intercepted access into the shadow; returns a new object (the input is not modified). */
export function reduceRtlShadow(shadow: RtlShadow | undefined, access: RtlMmioAccess): RtlShadow {
  const s0 = shadow ?? initialRtlShadow();
  if (access.kind !== 'mmioWrite') return s0; // reads change nothing the shadow keeps
  const s: RtlShadow = {
    ...s0,
    txPoll: { ...s0.txPoll },
    phy: s0.phy.slice(),
    phyOrder: s0.phyOrder.slice(),
    dtccr: [s0.dtccr[0], s0.dtccr[1]],
  };
  for (let i = 0; i < access.size; i++) {
    const o = access.offset + i;
    const b = Math.floor(access.value / 2 ** (8 * i)) & 0xff;
    if (o === Reg.CHIPCMD) {
      s.chipCmd = b;
      if (b & ChipCmd.Reset) {
        s.resets = inc(s.resets);
        s.txPoll.hpqSinceReset = false;
      }
    } else if (o === Reg.TXPOLL) {
      if (b & TxPoll.NPQ) s.txPoll.npq = inc(s.txPoll.npq);
      if (b & TxPoll.HPQ) {
        s.txPoll.hpq = inc(s.txPoll.hpq);
        s.txPoll.hpqSinceReset = true;
      }
      if (b & TxPoll.FSWInt) s.txPoll.fswint = inc(s.txPoll.fswint);
    } else if (o >= Reg.DTCCR_LO && o < Reg.DTCCR_LO + 8) {
      const d = (o - Reg.DTCCR_LO) >> 2;
      s.dtccr[d] = setByte(s.dtccr[d], (o - Reg.DTCCR_LO) & 3, b);
      if (o === Reg.DTCCR_LO && b & Dtccr.Cmd) s.dumps = inc(s.dumps);
    } else if (o >= Reg.PHYAR && o < Reg.PHYAR + 4) {
      s.phyar = setByte(s.phyar, o - Reg.PHYAR, b);
      if (o === Reg.PHYAR + 3 && s.phyar & Phyar.Flag) recordPhyWrite(s, (s.phyar >>> Phyar.RegShift) & Phyar.RegMask, s.phyar & Phyar.DataMask);
    }
  }
  return s;
}

function recordPhyWrite(s: RtlShadow, reg: number, data: number): void {
  s.phyWrites = inc(s.phyWrites);
  if (reg === Mii.BMCR && data & Bmcr.Reset) {
    // A PHY reset returns every register to its default: earlier writes are gone.
    s.phy.fill(null);
    s.phyOrder = [];
    return;
  }
  const value = reg === Mii.BMCR ? data & ~Bmcr.SelfClearing : data;
  s.phy[reg] = value;
  s.phyOrder = s.phyOrder.filter((r) => r !== reg);
  s.phyOrder.push(reg);
}

/** Reads this device's shadow from a ShadowLog, tolerating a missing or foreign entry. */
export function rtlShadowFrom(log: Record<string, unknown>, device?: string): RtlShadow | null {
  const e = (device !== undefined ? log[`${RTL_SHADOW_KEY}:${device}`] : undefined) ?? log[RTL_SHADOW_KEY];
  if (!e || typeof e !== 'object' || (e as { v?: unknown }).v !== 1) return null;
  const s = e as RtlShadow;
  if (!Array.isArray(s.phy) || s.phy.length !== 32 || !Array.isArray(s.phyOrder)) return null;
  return s;
}
