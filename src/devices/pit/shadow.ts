/**
 * The hypervisor's shadow of the 8254: a pure reducer over the guest's
 * intercepted accesses to ports 0x40-0x43 and 0x61 (ShadowLog key 'pit').
 *
 * It keeps, per channel, only what the chip will not tell at capture time:
 *  - the reload value (CR) last written: write-only;
 *  - the write flip-flop and the LSB of a half-written count (write_state,
 *    write_latch): write-only;
 *  - the read flip-flop of the live count (read_state): shows only in which
 *    byte comes back next;
 *  - whether a count or status is latched and not fully read, and which byte
 *    is next (count_latched, status_latched): capture must drain these
 *    before it can latch its own values, and must know how many bytes;
 *  - whether a complete count followed the last control word: a counter that
 *    got a control word but no count behaves differently (no load, no
 *    trigger) and no register shows it;
 *  - for modes 1 and 5, whether a trigger (GATE2 rising edge) came after the
 *    count, and the largest count that trigger may have loaded: the strobe of
 *    mode 5 is otherwise invisible (see reconstructor.ts);
 *  - the control word fields (mode, RW, BCD): readable by read-back, kept to
 *    size the capture program and to cross-check the chip;
 *  - port 0x61's latch (GATE2 and the speaker bits).
 * Every field is a number, so the shadow is bounded (a few dozen numbers) and
 * JSON-serialisable.
 *
 * The flip-flop and latch rules mirror model.ts exactly (datasheet rules, QEMU
 * encodings); no timing is involved, so a reducer can follow them.
 */
import type { PortAccess } from '../../sim/bus.js';
import {
  CW_BCD,
  CW_MODE_MASK,
  CW_MODE_SHIFT,
  CW_RW_SHIFT,
  CW_SC_READBACK,
  CW_SC_SHIFT,
  PIT_PORT_CONTROL,
  PIT_PORT_COUNTER0,
  PIT_PORT_COUNTER2,
  PORT61_GATE2,
  PORT61_OUT2,
  PORT_61,
  RB_NO_COUNT,
  RB_NO_STATUS,
  RW_LATCH,
  RW_LSB_MSB,
  RW_STATE_LSB,
  RW_STATE_MSB,
  RW_STATE_WORD0,
  RW_STATE_WORD1,
  countWeight,
  effectiveMode,
  rbChannelBit,
  rwInitialState,
} from './registers.js';

export const PIT_SHADOW_KEY = 'pit';

export interface PitChannelShadow {
  mode: number;
  rw: number;
  bcd: number;
  /** Raw 16-bit count register as last completely written. */
  cr: number;
  /** 1 if a complete count was written since the last control word. */
  countWritten: number;
  writeState: number;
  writeLatch: number;
  readState: number;
  countLatched: number;
  statusLatched: number;
  /** Modes 1/5: 1 once a GATE rising edge came after a count (since the control word). */
  triggered: number;
  /** Modes 1/5: largest count weight the last trigger may have loaded (the CR then, or one written within the same CLK). */
  maxLoadWeight: number;
  /**
   * Largest count weight written since the control word (0 = none). Under
   * RW = LSB only it tells whether a counting-down CE can hold a nonzero MSB
   * (only after a count of 0, i.e. 2^16 / 10^4).
   */
  maxCountWeight: number;
}

export interface PitShadow {
  channels: PitChannelShadow[];
  /** Port 0x61 as last written (bit 5 not stored). */
  port61: number;
}

/** The shadow matching the model's reset state (see model.ts: mode 3, count 2^16 running, LSB/MSB). */
export function initialPitShadow(): PitShadow {
  const ch = (): PitChannelShadow => ({
    mode: 3,
    rw: RW_LSB_MSB,
    bcd: 0,
    cr: 0,
    countWritten: 1,
    writeState: RW_STATE_WORD0,
    writeLatch: 0,
    readState: RW_STATE_WORD0,
    countLatched: 0,
    statusLatched: 0,
    triggered: 0,
    maxLoadWeight: 0,
    maxCountWeight: 0x10000, // the reset count 2^16
  });
  return { channels: [ch(), ch(), ch()], port61: 0 };
}

function cloneShadow(s: PitShadow): PitShadow {
  return { channels: s.channels.map((c) => ({ ...c })), port61: s.port61 };
}

function readByte(c: PitChannelShadow): void {
  if (c.statusLatched) {
    c.statusLatched = 0;
    return;
  }
  if (c.countLatched) {
    c.countLatched = c.countLatched === RW_STATE_WORD0 ? RW_STATE_MSB : 0;
    return;
  }
  if (c.readState === RW_STATE_WORD0) c.readState = RW_STATE_WORD1;
  else if (c.readState === RW_STATE_WORD1) c.readState = RW_STATE_WORD0;
}

function countComplete(c: PitChannelShadow, value: number): void {
  c.cr = value & 0xffff;
  c.countWritten = 1;
  c.maxCountWeight = Math.max(c.maxCountWeight, countWeight(c.cr, c.bcd));
  const m = effectiveMode(c.mode);
  if ((m === 1 || m === 5) && c.triggered) c.maxLoadWeight = Math.max(c.maxLoadWeight, countWeight(c.cr, c.bcd));
}

function writeCount(c: PitChannelShadow, b: number): void {
  switch (c.writeState) {
    case RW_STATE_LSB:
      countComplete(c, b);
      return;
    case RW_STATE_MSB:
      countComplete(c, b << 8);
      return;
    case RW_STATE_WORD0:
      c.writeLatch = b;
      c.writeState = RW_STATE_WORD1;
      return;
    default:
      c.writeState = RW_STATE_WORD0;
      countComplete(c, c.writeLatch | (b << 8));
  }
}

function writeControl(s: PitShadow, v: number): void {
  const sc = v >> CW_SC_SHIFT;
  if (sc === CW_SC_READBACK) {
    for (let i = 0; i < 3; i++) {
      if (!(v & rbChannelBit(i))) continue;
      const c = s.channels[i]!;
      if (!(v & RB_NO_COUNT) && !c.countLatched) c.countLatched = c.rw;
      if (!(v & RB_NO_STATUS)) c.statusLatched = 1;
    }
    return;
  }
  const c = s.channels[sc]!;
  const rw = (v >> CW_RW_SHIFT) & 3;
  if (rw === RW_LATCH) {
    if (!c.countLatched) c.countLatched = c.rw;
    return;
  }
  c.mode = (v >> CW_MODE_SHIFT) & CW_MODE_MASK;
  c.rw = rw;
  c.bcd = v & CW_BCD;
  c.readState = rwInitialState(rw);
  c.writeState = rwInitialState(rw);
  c.countLatched = 0;
  c.countWritten = 0;
  c.triggered = 0;
  c.maxLoadWeight = 0;
  c.maxCountWeight = 0;
}

function writePort61(s: PitShadow, v: number): void {
  const before = s.port61 & PORT61_GATE2;
  s.port61 = v & ~PORT61_OUT2 & 0xff;
  const c = s.channels[2]!;
  const m = effectiveMode(c.mode);
  if (!before && v & PORT61_GATE2 && (m === 1 || m === 5) && c.countWritten) {
    c.triggered = 1;
    c.maxLoadWeight = countWeight(c.cr, c.bcd);
  }
}

function reduceByte(s: PitShadow, dir: 'in' | 'out', port: number, value: number): void {
  if (port >= PIT_PORT_COUNTER0 && port <= PIT_PORT_COUNTER2) {
    const c = s.channels[port - PIT_PORT_COUNTER0]!;
    if (dir === 'in') readByte(c);
    else writeCount(c, value);
  } else if (port === PIT_PORT_CONTROL) {
    if (dir === 'out') writeControl(s, value);
  } else if (port === PORT_61) {
    if (dir === 'out') writePort61(s, value);
  }
}

/**
 * Fold one intercepted guest access into the shadow (returns a new object).
 * Accesses wider than a byte are split over consecutive ports, as the model
 * (and the ISA bus) does.
 */
export function reducePitShadow(shadow: PitShadow, access: PortAccess): PitShadow {
  const s = cloneShadow(shadow);
  for (let i = 0; i < access.size; i++) reduceByte(s, access.dir, access.port + i, (access.value >>> (8 * i)) & 0xff);
  return s;
}

/** What the simulator's hypervisor needs to trap and shadow the PIT. */
export const pitShadowSpec = {
  key: PIT_SHADOW_KEY,
  ports: [
    [PIT_PORT_COUNTER0, PIT_PORT_CONTROL],
    [PORT_61, PORT_61],
  ] as Array<[number, number]>,
  initial: initialPitShadow,
  reduce: (s: unknown, a: PortAccess): unknown => reducePitShadow(s as PitShadow, a),
};
