/**
 * Intel 8254 Programmable Interval Timer: ports, control-word and read-back
 * encodings, status byte, and the counting arithmetic (binary and BCD) that
 * the model, the shadow and the reconstructor share.
 *
 * Sources: Intel 8254 datasheet (order no. 231164): "Control Word Format",
 * "Read-Back Command Format", "Status Byte", "Mode Definitions"; the PC/AT
 * port 0x61 layout (System Control Port B); QEMU hw/timer/i8254.c for the
 * flip-flop state numbering (RW_STATE_*), which our inspect() mirrors.
 */

/** CLK input of the three counters on a PC: 14.31818 MHz / 12. */
export const PIT_FREQ_HZ = 1_193_182;
const NS_PER_S = 1_000_000_000;

export const PIT_PORT_COUNTER0 = 0x40;
export const PIT_PORT_COUNTER1 = 0x41;
export const PIT_PORT_COUNTER2 = 0x42;
/** Control word register; write only (reads return 0 on QEMU and, per MAME's measurements, on silicon). */
export const PIT_PORT_CONTROL = 0x43;
export const PIT_CHANNELS = 3;

/**
 * PC/AT System Control Port B. Bit 0 drives GATE2, bit 5 reads OUT2; the
 * other bits (speaker data, refresh, NMI status on real boards) are a plain
 * latch in this model so that the port has one owner on the bus.
 */
export const PORT_61 = 0x61;
export const PORT61_GATE2 = 0x01;
export const PORT61_SPEAKER_DATA = 0x02;
export const PORT61_OUT2 = 0x20;

// ---- Control word (datasheet "Control Word Format") ------------------------
/** SC1..SC0, bits 7-6: counter select; 3 = read-back command (8254 only). */
export const CW_SC_SHIFT = 6;
export const CW_SC_READBACK = 3;
/** RW1..RW0, bits 5-4: 0 = counter latch command, 1 = LSB only, 2 = MSB only, 3 = LSB then MSB. */
export const CW_RW_SHIFT = 4;
export const CW_RW_MASK = 0x30;
export const RW_LATCH = 0;
export const RW_LSB = 1;
export const RW_MSB = 2;
export const RW_LSB_MSB = 3;
/** M2..M0, bits 3-1. 6 and 7 are aliases of modes 2 and 3 (M2 is "don't care" there). */
export const CW_MODE_SHIFT = 1;
export const CW_MODE_MASK = 0x07;
/** Bit 0: BCD counting (4 decades) instead of 16-bit binary. */
export const CW_BCD = 0x01;

export const MODE_INTERRUPT_ON_TC = 0;
export const MODE_ONE_SHOT = 1;
export const MODE_RATE_GENERATOR = 2;
export const MODE_SQUARE_WAVE = 3;
export const MODE_SW_STROBE = 4;
export const MODE_HW_STROBE = 5;

// ---- Read-back command (datasheet "Read-Back Command Format") --------------
/** Bits 7-6 = 11. Bit 5 = /COUNT (0: latch count), bit 4 = /STATUS (0: latch status), bits 3-1 = CNT2..CNT0, bit 0 reserved (0). */
export const RB_COMMAND = 0xc0;
export const RB_NO_COUNT = 0x20;
export const RB_NO_STATUS = 0x10;
export function rbChannelBit(channel: number): number {
  return 2 << channel;
}

// ---- Status byte (datasheet "Status Byte") ---------------------------------
/** Bit 7 OUT pin, bit 6 NULL COUNT, bits 5-0 the control word's RW, M and BCD "exactly as written". */
export const ST_OUT = 0x80;
export const ST_NULL_COUNT = 0x40;

// ---- Read/write flip-flop states: QEMU's RW_STATE_* numbers ----------------
/** Next byte is the LSB of a one-byte (LSB-only) count. */
export const RW_STATE_LSB = 1;
/** Next byte is the MSB of a one-byte (MSB-only) count. */
export const RW_STATE_MSB = 2;
/** LSB-then-MSB format, LSB next. */
export const RW_STATE_WORD0 = 3;
/** LSB-then-MSB format, MSB next (half read / half written). */
export const RW_STATE_WORD1 = 4;

export function counterPort(channel: number): number {
  return PIT_PORT_COUNTER0 + channel;
}

/** Control word that programs `channel` (RW must be 1..3; RW 0 is the latch command). */
export function controlWord(channel: number, rw: number, mode: number, bcd: number): number {
  return (channel << CW_SC_SHIFT) | (rw << CW_RW_SHIFT) | ((mode & CW_MODE_MASK) << CW_MODE_SHIFT) | (bcd & CW_BCD);
}

/** Counter latch command for `channel` (control word with RW = 00). */
export function latchCommand(channel: number): number {
  return channel << CW_SC_SHIFT;
}

/** Read-back command latching count and/or status of the channels in `channels`. */
export function readBackCommand(opts: { count: boolean; status: boolean; channels: readonly number[] }): number {
  let v = RB_COMMAND;
  if (!opts.count) v |= RB_NO_COUNT;
  if (!opts.status) v |= RB_NO_STATUS;
  for (const c of opts.channels) v |= rbChannelBit(c);
  return v;
}

export function statusByte(out: number, nullCount: number, rw: number, mode: number, bcd: number): number {
  return (out ? ST_OUT : 0) | (nullCount ? ST_NULL_COUNT : 0) | ((rw & 3) << CW_RW_SHIFT) | ((mode & CW_MODE_MASK) << CW_MODE_SHIFT) | (bcd & CW_BCD);
}

/** The mode the counter behaves in: M2 is "don't care" for 6 and 7 (datasheet footnote to the control word). */
export function effectiveMode(mode: number): number {
  return mode >= 6 ? mode - 4 : mode;
}

/** Initial flip-flop state after a control word with this RW field. */
export function rwInitialState(rw: number): number {
  return rw; // RW 1 -> RW_STATE_LSB, 2 -> RW_STATE_MSB, 3 -> RW_STATE_WORD0
}

/** Can a count of `v` be written in this RW format? (A one-byte format clears the other byte.) */
export function countWritable(v: number, rw: number): boolean {
  if (rw === RW_LSB) return (v & 0xff00) === 0;
  if (rw === RW_MSB) return (v & 0x00ff) === 0;
  return true;
}

/** The bytes that write count `v` in format `rw` (caller checks countWritable). */
export function countBytes(v: number, rw: number): number[] {
  if (rw === RW_LSB) return [v & 0xff];
  if (rw === RW_MSB) return [(v >> 8) & 0xff];
  return [v & 0xff, (v >> 8) & 0xff];
}

// ---- Counting arithmetic ----------------------------------------------------
/** Counts a full turn of the counting element takes: 2^16 binary, 10^4 BCD. */
export function countModulus(bcd: number): number {
  return bcd ? 10_000 : 0x10000;
}

/**
 * How many single decrements take the counting element from `raw` to 0: the
 * count's value, with 0 meaning the maximum (2^16, or 10^4 in BCD). In BCD a
 * nibble holding A-F still counts down one per CLK and borrows like a decade
 * (MAME's measurement, src/devices/machine/pit8253.cpp), so the weight is
 * simply sum(digit * 10^i).
 */
export function countWeight(raw: number, bcd: number): number {
  if (!bcd) return raw === 0 ? 0x10000 : raw;
  if (raw === 0) return 10_000;
  return (raw & 0xf) + ((raw >> 4) & 0xf) * 10 + ((raw >> 8) & 0xf) * 100 + ((raw >> 12) & 0xf) * 1000;
}

/** One digit counted down `n` times: [new digit, borrows from the next digit]. */
function decDigit(d: number, n: number): [number, number] {
  if (n <= d) return [d - n, 0];
  const past = n - d - 1; // steps after the first wrap 0 -> 9
  return [9 - (past % 10), 1 + Math.floor(past / 10)];
}

/**
 * The counting element after `n` single decrements: binary wraps 0 -> FFFF,
 * BCD counts digit by digit and wraps 0000 -> 9999 (datasheet: "the counter
 * wraps around to the highest count, FFFF hex for binary or 9999 for BCD").
 */
export function decrementCount(raw: number, n: number, bcd: number): number {
  if (n === 0) return raw;
  if (!bcd) return (((raw - n) % 0x10000) + 0x10000) % 0x10000;
  let out = 0;
  let borrow = n;
  for (let i = 0; i < 4 && borrow > 0; i++) {
    const [d, b] = decDigit((raw >> (4 * i)) & 0xf, borrow);
    out |= d << (4 * i);
    borrow = b;
    if (borrow === 0) {
      // Untouched higher digits keep their value.
      out |= raw & ~((1 << (4 * (i + 1))) - 1) & 0xffff;
    }
  }
  return out & 0xffff;
}

/**
 * Number of single decrements from `from` (a freshly loaded count; 0 is the
 * maximum) down to `to` without reaching the terminal count, or null if `to`
 * is not on that path. `to` 0 is only "just loaded with 0".
 */
export function downDistance(from: number, to: number, bcd: number): number | null {
  if (to === 0) return from === 0 ? 0 : null;
  const d = countWeight(from, bcd) - countWeight(to, bcd);
  if (d < 0) return null;
  return decrementCount(from, d, bcd) === to ? d : null;
}

/**
 * Mode 2 reload value. "A COUNT of 1 is illegal in mode 2" (datasheet); MAME
 * measured that silicon then behaves as with 2, and so does the model.
 */
export function mode2Load(cr: number): number {
  return cr === 1 ? 2 : cr;
}

/**
 * Mode 3 load value. The datasheet ("Mode 3 is implemented as follows"): an
 * even count is loaded as is, an odd count as "the initial count minus one
 * (an even number)". A count of 1 is illegal; MAME measured it behaves as 0
 * (i.e. 2^16), which this follows.
 */
export function mode3Load(cr: number): number {
  return cr === 1 ? 0 : cr & ~1;
}

/**
 * Whether the count in the CR gives a mode 3 high half one CLK longer than
 * its low half: "one CLK pulse after the count expires, OUT goes low" for odd
 * counts. The CE only ever holds the even part, so the chip can only learn
 * the oddness from the CR at the time the half expires; we take it from
 * there. (QEMU computes (count+1)/2 from its single count field.)
 */
export function mode3Odd(cr: number): boolean {
  return (cr & 1) === 1 && cr !== 1;
}

// ---- Time: CLK pulses on an absolute grid -----------------------------------
/**
 * CLK pulse k (k >= 1) happens at ceil(k * 1e9 / F) ns of the node clock;
 * `pulsesAt(t)` counts the pulses at or before t. Both are exact in doubles
 * for any t below 2^53 ns: the products are split at whole seconds.
 */
export function pulsesAt(ns: number): number {
  const t = Math.floor(ns);
  const s = Math.floor(t / NS_PER_S);
  const r = t - s * NS_PER_S;
  return s * PIT_FREQ_HZ + Math.floor((r * PIT_FREQ_HZ) / NS_PER_S);
}

export function pulseTimeNs(k: number): number {
  const s = Math.floor(k / PIT_FREQ_HZ);
  const r = k - s * PIT_FREQ_HZ;
  return s * NS_PER_S + Math.ceil((r * NS_PER_S) / PIT_FREQ_HZ);
}

/** One CLK period in ns (838.095...). */
export const PIT_PERIOD_NS = NS_PER_S / PIT_FREQ_HZ;
