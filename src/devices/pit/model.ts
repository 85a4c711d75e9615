/**
 * Register-exact model of the Intel 8254 PIT as wired in a PC: counters 0-2
 * at ports 0x40-0x42, control word at 0x43, GATE2/OUT2 on port 0x61, OUT0 on
 * IRQ0, all three clocked at 1.193182 MHz.
 *
 * Counting is lazy and exact: nothing ticks. The chip remembers the CLK pulse
 * up to which it is synchronised; every access, advanceTo() and inspect()
 * first applies the pulses since then in closed form (a few arithmetic steps
 * per OUT transition at most; periodic modes skip whole periods), so a
 * counter costs nothing between accesses and is exact to the pulse. Pulses
 * sit on an absolute grid (registers.ts: pulse k at ceil(k·1e9/F) ns); a port
 * access at time t happens after every pulse at or before t.
 *
 * Behaviour follows the Intel 8254 datasheet. Where it is silent we choose,
 * say so, and prefer MAME's measurements of real chips
 * (src/devices/machine/pit8253.cpp) over QEMU (hw/timer/i8254.c), which takes
 * several shortcuts:
 *  - NULL COUNT (status bit 6) is set by a control word and by a complete
 *    count write and cleared when the CR is transferred to the CE
 *    (datasheet "Null Count" table). QEMU never sets it.
 *  - A count written in modes 2 and 3 while counting takes effect at the next
 *    reload (datasheet: "Writing a new count while counting does not affect
 *    the current counting sequence"); QEMU reloads immediately.
 *  - The CE is loaded on the CLK pulse after the count is written (modes 0, 2,
 *    3, 4) or after the trigger (modes 1, 5), and that pulse does not
 *    decrement; QEMU starts counting at the write.
 *  - GATE low stops counting in modes 0, 2, 3, 4 and forces OUT high in
 *    modes 2 and 3; QEMU ignores the level.
 * Choices where the datasheet leaves things undefined:
 *  - After a control word and before a count, the CE "is undefined": the
 *    model lets it keep counting down by one per CLK, ignoring GATE (phase
 *    'idle'); likewise modes 1 and 5 while waiting for a trigger ('wait').
 *  - In mode 0 the first byte of a two-byte count "disables counting" and
 *    drops OUT; the model also drops a load still pending from an earlier
 *    count (MAME does the same: the count is not complete).
 *  - GATE low in mode 4 freezes the counter completely, a strobe included.
 *  - In mode 2 or 3 a load due (count written, or trigger) happens on the
 *    next CLK even with GATE low; counting then waits for GATE.
 *  - Reads and the latch use QEMU's separate flip-flops (read_state for the
 *    live count, count_latched for a latched one); the datasheet does not
 *    say how the two interact.
 *  - Mode 3, odd count N: the datasheet loads N-1 and ends the high half
 *    "one CLK pulse after the count expires". As the CE holds only the even
 *    part, the chip must take the oddness from the CR when the half expires;
 *    so do we (registers.ts mode3Odd). The CE shows 0 during that extra CLK.
 *  - The illegal count 1 behaves as 2 in mode 2 and as 0 (2^16) in mode 3,
 *    as MAME measured; the CR still holds the 1 that was written.
 *  - Power-up state is undefined (datasheet). We take QEMU's reset (mode 3,
 *    count 2^16 running, gates 1/1/0) but with RW = LSB-then-MSB, because
 *    QEMU's rw_mode 0 is a state no control word can produce again.
 */
import type { AccessSize, DeviceModel } from '../io.js';
import type { IrqLine, TimedDevice } from '../irq.js';
import type { BusDevice } from '../../sim/bus.js';
import type { Clock } from '../../sim/clock.js';
import {
  CW_BCD,
  CW_MODE_MASK,
  CW_MODE_SHIFT,
  CW_RW_SHIFT,
  CW_SC_READBACK,
  CW_SC_SHIFT,
  PIT_PORT_CONTROL,
  PIT_PORT_COUNTER0,
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
  decrementCount,
  effectiveMode,
  mode2Load,
  mode3Load,
  mode3Odd,
  pulseTimeNs,
  pulsesAt,
  rbChannelBit,
  rwInitialState,
  statusByte,
} from './registers.js';

/**
 * Where a counter is in its mode's sequence (silicon state no register shows
 * directly; QEMU derives it from count_load_time).
 *  - idle:   control word written, no complete count yet (CE free-running)
 *  - hold:   mode 0, first byte of a two-byte count written: counting stopped
 *  - load:   CR -> CE transfer due on the next CLK (count written or trigger)
 *  - wait:   modes 1/5: armed or finished, waiting for a GATE rising edge (CE free-running)
 *  - run:    counting its sequence (mode 0/1/4/5: towards terminal count;
 *            mode 2: the period; mode 3: the half given by OUT)
 *  - done:   modes 0/4 after terminal count/strobe: counting on (wrapped), no more events
 *  - strobe: modes 4/5: the one CLK with OUT low at terminal count
 *  - extra:  mode 3, odd count: the extra CLK of the high half (CE shows 0)
 */
export type PitPhase = 'idle' | 'hold' | 'load' | 'wait' | 'run' | 'done' | 'strobe' | 'extra';

export interface PitChannelInternal {
  // -- QEMU VMState "pit channel" v2 fields, same names and encodings --
  /** Reload value in the CR, 1..0x10000 (a written 0 is 0x10000). */
  count: number;
  latched_count: number;
  /** 0 none; else RW_STATE_* of the next latched byte (1 LSB, 2 MSB, 3 LSB of two). */
  count_latched: number;
  status_latched: number;
  /** Last latched status byte (bit 6 is NULL COUNT, which QEMU leaves 0). */
  status: number;
  /** RW_STATE_* of the next unlatched read. */
  read_state: number;
  /** RW_STATE_* of the next count write. */
  write_state: number;
  /** LSB of a two-byte count (meaningful while write_state is WORD1). */
  write_latch: number;
  rw_mode: number;
  /** M2..M0 exactly as written (6 and 7 kept, as in the status byte). */
  mode: number;
  bcd: number;
  gate: number;
  /** Node ns of the last CR -> CE transfer. */
  count_load_time: number;
  /** Node ns of the next OUT transition, -1 if none will happen without a write or a gate change. */
  next_transition_time: number;
  // -- silicon state QEMU does not keep --
  null_count: number;
  out: number;
  /** The counting element as a read would show it now. */
  ce: number;
  phase: PitPhase;
}

export interface PitInternal {
  /** QEMU's channels[0].irq_disabled (HPET legacy mode); always 0 here. */
  irq_disabled: number;
  channels: PitChannelInternal[];
  /** Port 0x61 latch (bit 0 = GATE2); bit 5 is not stored, it reads OUT2. */
  port61: number;
}

interface Channel {
  mode: number;
  rw: number;
  bcd: number;
  /** Count register, raw 16 bits as written. */
  cr: number;
  writeState: number;
  writeLatch: number;
  readState: number;
  countLatched: number;
  latchedCount: number;
  statusLatched: number;
  status: number;
  gate: number;
  nullCount: number;
  out: number;
  ce: number;
  phase: PitPhase;
  loadTick: number;
}

/** Most OUT0 edges delivered one by one in a single advance; longer jumps are collapsed (see advanceTo). */
const EDGE_CAP = 8;

function resetChannel(gate: number, tick: number): Channel {
  // QEMU pit_reset_common: mode 3, count 0x10000 loaded now, gate 1 except channel 2.
  return {
    mode: 3,
    rw: RW_LSB_MSB,
    bcd: 0,
    cr: 0,
    writeState: RW_STATE_WORD0,
    writeLatch: 0,
    readState: RW_STATE_WORD0,
    countLatched: 0,
    latchedCount: 0,
    statusLatched: 0,
    status: 0,
    gate,
    nullCount: 0,
    out: 1,
    ce: 0,
    phase: 'run',
    loadTick: tick,
  };
}

/** CR -> CE transfer on CLK pulse `tick`: the pulse that loads does not decrement. */
function loadCe(c: Channel, tick: number): void {
  const m = effectiveMode(c.mode);
  c.ce = m === 2 ? mode2Load(c.cr) : m === 3 ? mode3Load(c.cr) : c.cr;
  c.nullCount = 0;
  c.loadTick = tick;
  c.phase = 'run';
  // Mode 1: "OUT will go low on the CLK pulse following a trigger". Modes 2-5
  // start a sequence with OUT high; mode 0 keeps the low set by the write.
  if (m === 1) c.out = 0;
  else if (m !== 0) c.out = 1;
}

/**
 * Apply `n` CLK pulses (GATE constant meanwhile); `base` is the pulse index
 * before the first of them, for count_load_time.
 */
function advancePulses(c: Channel, n: number, base: number): void {
  const m = effectiveMode(c.mode);
  const bcd = c.bcd;
  let p = 0;
  while (p < n) {
    const left = n - p;
    if (c.phase === 'hold') return;
    if (c.phase === 'idle' || c.phase === 'wait') {
      c.ce = decrementCount(c.ce, left, bcd);
      return;
    }
    if (c.phase === 'load') {
      p += 1;
      loadCe(c, base + p);
      continue;
    }
    switch (m) {
      case 0: {
        if (!c.gate) return;
        if (c.phase === 'run') {
          const w = countWeight(c.ce, bcd);
          if (left < w) {
            c.ce = decrementCount(c.ce, left, bcd);
            return;
          }
          // Terminal count: "OUT goes high and remains high until a new count or Mode 0 control word".
          p += w;
          c.ce = 0;
          c.out = 1;
          c.phase = 'done';
          continue;
        }
        c.ce = decrementCount(c.ce, left, bcd); // done: keeps counting (wraps)
        return;
      }
      case 1: {
        // Counting ignores GATE in mode 1; the one-shot ends at zero and the CE wraps on.
        const w = countWeight(c.ce, bcd);
        if (left >= w) {
          c.out = 1;
          c.phase = 'wait';
        }
        c.ce = decrementCount(c.ce, left, bcd);
        return;
      }
      case 4:
      case 5: {
        if (m === 4 && !c.gate) return;
        if (c.phase === 'run') {
          const w = countWeight(c.ce, bcd);
          if (left < w) {
            c.ce = decrementCount(c.ce, left, bcd);
            return;
          }
          // "When the initial count expires, OUT will go low for one CLK pulse and then go high again."
          p += w;
          c.ce = 0;
          c.out = 0;
          c.phase = 'strobe';
          continue;
        }
        if (c.phase === 'strobe') {
          p += 1;
          c.out = 1;
          c.ce = decrementCount(0, 1, bcd);
          c.phase = m === 4 ? 'done' : 'wait';
          continue;
        }
        c.ce = decrementCount(c.ce, left, bcd); // mode 4 done
        return;
      }
      case 2: {
        if (!c.gate) return;
        const toOne = countWeight(c.ce, bcd) - 1;
        if (toOne === 0) {
          // CE at 1 (OUT low for this CLK): the next pulse reloads and OUT goes high.
          p += 1;
          loadCe(c, base + p);
          const period = countWeight(c.ce, bcd);
          const rest = n - p;
          if (rest >= period) {
            p += Math.floor(rest / period) * period;
            c.loadTick = base + p;
          }
          continue;
        }
        if (left < toOne) {
          c.ce = decrementCount(c.ce, left, bcd);
          return;
        }
        // "When the initial count has decremented to 1, OUT goes low for one CLK pulse."
        p += toOne;
        c.ce = 1;
        c.out = 0;
        continue;
      }
      case 3: {
        if (!c.gate) return;
        if (c.phase === 'extra') {
          p += 1;
          loadCe(c, base + p);
          c.out = 0;
          continue;
        }
        const half = countWeight(c.ce, bcd) / 2;
        if (left < half) {
          c.ce = decrementCount(c.ce, 2 * left, bcd);
          return;
        }
        p += half;
        if (c.out === 1 && mode3Odd(c.cr)) {
          // Odd count: the high half lasts one CLK more, showing 0.
          c.ce = 0;
          c.phase = 'extra';
          continue;
        }
        const wasHigh = c.out === 1;
        loadCe(c, base + p);
        c.out = wasHigh ? 0 : 1;
        if (!wasHigh) {
          // Start of a period: skip whole periods at once.
          const period = countWeight(c.ce, bcd) + (mode3Odd(c.cr) ? 1 : 0);
          const rest = n - p;
          if (rest >= period) {
            p += Math.floor(rest / period) * period;
            c.loadTick = base + p;
          }
        }
        continue;
      }
      default:
        return;
    }
  }
}

/** CLK pulses until OUT next changes with no access in between, or Infinity. */
function pulsesToOutChange(c: Channel): number {
  const m = effectiveMode(c.mode);
  switch (c.phase) {
    case 'hold':
    case 'idle':
    case 'wait':
    case 'done':
      return Infinity;
    case 'load': {
      const next: Channel = { ...c };
      loadCe(next, 0);
      if (next.out !== c.out) return 1;
      const rest = pulsesToOutChange(next);
      return rest === Infinity ? Infinity : 1 + rest;
    }
    case 'strobe':
      return m === 4 && !c.gate ? Infinity : 1;
    case 'extra':
      return c.gate ? 1 : Infinity;
    case 'run':
      break;
  }
  const w = countWeight(c.ce, c.bcd);
  switch (m) {
    case 0:
    case 4:
      return c.gate ? w : Infinity;
    case 1:
    case 5:
      return w;
    case 2:
      if (!c.gate) return Infinity;
      return w === 1 ? 1 : w - 1;
    case 3:
      if (!c.gate) return Infinity;
      return w / 2 + (c.out === 1 && mode3Odd(c.cr) ? 1 : 0);
    default:
      return Infinity;
  }
}

export class Pit implements BusDevice, TimedDevice, DeviceModel<PitInternal> {
  readonly name = 'pit';
  readonly ports: ReadonlyArray<readonly [number, number]> = [
    [PIT_PORT_COUNTER0, PIT_PORT_CONTROL],
    [PORT_61, PORT_61],
  ];
  private ch: Channel[] = [];
  private port61 = 0;
  /** CLK pulses applied so far (absolute pulse index). */
  private tick = 0;
  private irqLevel = false;

  /**
   * @param clock the node clock the counters run against
   * @param irq0  IRQ0 input of the interrupt controller, driven by OUT0
   */
  constructor(
    private readonly clock: Clock,
    private readonly irq0: IrqLine,
  ) {
    this.reset();
  }

  /** Power-on / system reset (see the file comment for the state chosen). */
  reset(): void {
    this.tick = pulsesAt(this.clock.nowNs());
    this.ch = [resetChannel(1, this.tick), resetChannel(1, this.tick), resetChannel(0, this.tick)];
    this.port61 = 0;
    this.irqLevel = this.ch[0]!.out === 1;
    this.irq0(this.irqLevel);
  }

  // ---- time ----------------------------------------------------------------

  /**
   * Bring the counters up to `nowNs` and drive IRQ0 with every OUT0 change.
   * If OUT0 would change more than EDGE_CAP times in one jump (the machine
   * slept long over a fast periodic timer), the remaining changes are
   * collapsed into one low/high pair: an edge-triggered 8259 latches one
   * request either way, and nothing can acknowledge in between.
   */
  advanceTo(nowNs: number): void {
    const target = pulsesAt(nowNs);
    if (!(target > this.tick)) return;
    const base = this.tick;
    advancePulses(this.ch[1]!, target - base, base);
    advancePulses(this.ch[2]!, target - base, base);
    const c0 = this.ch[0]!;
    let t = base;
    let edges = 0;
    while (t < target) {
      const n = pulsesToOutChange(c0);
      if (t + n > target || edges >= EDGE_CAP) {
        const before = c0.out;
        advancePulses(c0, target - t, t);
        if (t + n <= target && c0.out === before) this.setIrq(before === 0); // changed and back: make the edge
        t = target;
        break;
      }
      advancePulses(c0, n, t);
      t += n;
      edges++;
      this.setIrq(c0.out === 1);
    }
    this.tick = target;
    this.setIrq(c0.out === 1);
  }

  /** Node ns of the next OUT0 transition (the only output wired to an interrupt). */
  nextEventNs(): number | undefined {
    const n = pulsesToOutChange(this.ch[0]!);
    return n === Infinity ? undefined : pulseTimeNs(this.tick + n);
  }

  private sync(): void {
    this.advanceTo(this.clock.nowNs());
  }

  private setIrq(level: boolean): void {
    if (level === this.irqLevel) return;
    this.irqLevel = level;
    this.irq0(level);
  }

  // ---- bus -----------------------------------------------------------------

  private owns(port: number): boolean {
    return (port >= PIT_PORT_COUNTER0 && port <= PIT_PORT_CONTROL) || port === PORT_61;
  }

  /** Wider accesses are split into byte cycles on consecutive ports, as the ISA bus does for an 8-bit device. */
  portRead(port: number, size: AccessSize): number {
    let v = 0;
    for (let i = 0; i < size; i++) {
      const b = this.owns(port + i) ? this.readByte(port + i) : 0xff;
      v |= b << (8 * i);
    }
    return v >>> 0;
  }

  portWrite(port: number, size: AccessSize, value: number): void {
    for (let i = 0; i < size; i++) {
      if (this.owns(port + i)) this.writeByte(port + i, (value >>> (8 * i)) & 0xff);
    }
  }

  private readByte(port: number): number {
    this.sync();
    if (port === PORT_61) return (this.port61 & ~PORT61_OUT2) | (this.ch[2]!.out ? PORT61_OUT2 : 0);
    if (port === PIT_PORT_CONTROL) return 0;
    return this.readCounter(this.ch[port - PIT_PORT_COUNTER0]!);
  }

  private writeByte(port: number, v: number): void {
    this.sync();
    if (port === PORT_61) this.writePort61(v);
    else if (port === PIT_PORT_CONTROL) this.writeControl(v);
    else this.writeCount(this.ch[port - PIT_PORT_COUNTER0]!, v);
    this.setIrq(this.ch[0]!.out === 1);
  }

  private readCounter(c: Channel): number {
    // "If both count and status of a counter are latched, the first read
    // operation of that counter will return latched status, regardless of
    // which was latched first."
    if (c.statusLatched) {
      c.statusLatched = 0;
      return c.status;
    }
    if (c.countLatched) {
      const v = c.latchedCount;
      switch (c.countLatched) {
        case RW_STATE_LSB:
          c.countLatched = 0;
          return v & 0xff;
        case RW_STATE_MSB:
          c.countLatched = 0;
          return (v >> 8) & 0xff;
        default:
          c.countLatched = RW_STATE_MSB;
          return v & 0xff;
      }
    }
    switch (c.readState) {
      case RW_STATE_LSB:
        return c.ce & 0xff;
      case RW_STATE_MSB:
        return (c.ce >> 8) & 0xff;
      case RW_STATE_WORD0:
        c.readState = RW_STATE_WORD1;
        return c.ce & 0xff;
      default:
        c.readState = RW_STATE_WORD0;
        return (c.ce >> 8) & 0xff;
    }
  }

  private latchCount(c: Channel): void {
    // "If a Counter is latched and then, some time later, latched again before
    // the count is read, the second Counter Latch Command is ignored."
    if (c.countLatched) return;
    c.latchedCount = c.ce;
    c.countLatched = c.rw;
  }

  private latchStatus(c: Channel): void {
    // "If multiple status latch operations ... all but the first are ignored."
    if (c.statusLatched) return;
    c.status = statusByte(c.out, c.nullCount, c.rw, c.mode, c.bcd);
    c.statusLatched = 1;
  }

  private writeControl(v: number): void {
    const sc = v >> CW_SC_SHIFT;
    if (sc === CW_SC_READBACK) {
      for (let i = 0; i < 3; i++) {
        if (!(v & rbChannelBit(i))) continue;
        const c = this.ch[i]!;
        if (!(v & RB_NO_COUNT)) this.latchCount(c);
        if (!(v & RB_NO_STATUS)) this.latchStatus(c);
      }
      return;
    }
    const c = this.ch[sc]!;
    const rw = (v >> CW_RW_SHIFT) & 3;
    if (rw === RW_LATCH) {
      // Counter latch command; MAME verified it leaves the mode untouched.
      this.latchCount(c);
      return;
    }
    // "When a Control Word is written to a Counter, all Control Logic is
    // immediately reset and OUT goes to a known initial state": low in mode 0,
    // high otherwise. It also resets both flip-flops, drops a latched count
    // ("held until read ... or until the Counter is reprogrammed") and sets
    // NULL COUNT. A latched status is kept (QEMU keeps it; the datasheet is silent).
    c.mode = (v >> CW_MODE_SHIFT) & CW_MODE_MASK;
    c.rw = rw;
    c.bcd = v & CW_BCD;
    c.readState = rwInitialState(rw);
    c.writeState = rwInitialState(rw);
    c.countLatched = 0;
    c.nullCount = 1;
    c.phase = 'idle';
    c.out = effectiveMode(c.mode) === 0 ? 0 : 1;
  }

  private writeCount(c: Channel, b: number): void {
    switch (c.writeState) {
      case RW_STATE_LSB:
        this.countComplete(c, b); // "the other byte will be zero"
        return;
      case RW_STATE_MSB:
        this.countComplete(c, b << 8);
        return;
      case RW_STATE_WORD0:
        c.writeLatch = b;
        c.writeState = RW_STATE_WORD1;
        if (effectiveMode(c.mode) === 0) {
          // Mode 0: "Writing the first byte disables counting. OUT is set low immediately."
          c.phase = 'hold';
          c.out = 0;
        }
        return;
      default:
        c.writeState = RW_STATE_WORD0;
        this.countComplete(c, c.writeLatch | (b << 8));
    }
  }

  private countComplete(c: Channel, value: number): void {
    c.cr = value & 0xffff;
    c.nullCount = 1;
    switch (effectiveMode(c.mode)) {
      case 0:
        c.out = 0;
        c.phase = 'load';
        return;
      case 4:
        // "If a new count is written during counting, it will be loaded on the next CLK pulse."
        c.phase = 'load';
        return;
      case 1:
      case 5:
        // Armed; a count written later waits for the next trigger.
        if (c.phase === 'idle') c.phase = 'wait';
        return;
      default:
        // Modes 2/3: the first count is loaded on the next CLK; later ones at the next reload.
        if (c.phase === 'idle') c.phase = 'load';
    }
  }

  private writePort61(v: number): void {
    this.port61 = v & ~PORT61_OUT2;
    const c = this.ch[2]!;
    const g = v & PORT61_GATE2 ? 1 : 0;
    if (g === c.gate) return;
    c.gate = g;
    const m = effectiveMode(c.mode);
    if (g) {
      // Rising edge = trigger: reloads on the next CLK in modes 1, 2, 3, 5 once a count was written.
      if ((m === 1 || m === 5 || m === 2 || m === 3) && c.phase !== 'idle') c.phase = 'load';
    } else if (m === 2 || m === 3) {
      // "If GATE goes low during an output pulse, OUT is set high immediately."
      c.out = 1;
      // A frozen extra CLK is the same as a frozen 0 (the rising edge reloads either way).
      if (c.phase === 'extra') c.phase = 'run';
    }
  }

  // ---- oracle ----------------------------------------------------------------

  inspect(): PitInternal {
    this.sync();
    return {
      irq_disabled: 0,
      port61: this.port61,
      channels: this.ch.map((c) => {
        const n = pulsesToOutChange(c);
        return {
          count: c.cr === 0 ? 0x10000 : c.cr,
          latched_count: c.latchedCount,
          count_latched: c.countLatched,
          status_latched: c.statusLatched,
          status: c.status,
          read_state: c.readState,
          write_state: c.writeState,
          write_latch: c.writeLatch,
          rw_mode: c.rw,
          mode: c.mode,
          bcd: c.bcd,
          gate: c.gate,
          count_load_time: pulseTimeNs(c.loadTick),
          next_transition_time: n === Infinity ? -1 : pulseTimeNs(this.tick + n),
          null_count: c.nullCount,
          out: c.out,
          ce: c.ce,
          phase: c.phase,
        };
      }),
    };
  }
}
