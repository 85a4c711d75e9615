/**
 * Capture and restore of the 8254 through what the hardware and the
 * hypervisor's shadow offer: read-back commands, latched counts, port 0x61,
 * the shadow of write-only registers (shadow.ts) and the chip's documented
 * behaviour. The model is never consulted (DESIGN rule 2); this file carries
 * its own knowledge of the datasheet (registers.ts arithmetic), as a real
 * reconstructor would.
 *
 * Capture (guest paused, one program): wait one CLK so that any load the
 * guest's last write made due has happened, drain whatever the guest had
 * latched and not read (the shadow says how many bytes), latch count and
 * status of all three counters with one read-back command, read them, read
 * port 0x61. From status, count, GATE2 and the shadow it infers each
 * counter's phase in its mode's sequence. Draining changes what the guest
 * would read next, so `rollback` re-latches on the source.
 *
 * Restore (fresh chip, ONE program). A counter's timing cannot be written:
 * a count reaches the counting element (CE) only on the CLK after the write,
 * and only at the start of the mode's sequence. So each counter is started
 * with a count v chosen so that, after a known number M of CLK pulses, it is
 * exactly where the source was: "setup" (control word, v, perhaps a GATE2
 * edge), then time passes, then "post" writes that do not disturb the running
 * sequence (the real reload value in modes 1/2/3/5 — silicon takes it at the
 * next reload/trigger —, the final control word of a counter that had no
 * count yet), then GATE2, then the pieces that must come last: half-written
 * counts (LSB only), half-read counts (one byte), latched count and status.
 * Setups are staggered by delays so every counter gets its own M. A delay of
 * D ns contains floor(D/T) or floor(D/T)+1 pulses depending on where the CLK
 * phase lies, which the reconstructor cannot know; delays are sized so each
 * counter sees M or M+1 pulses, and plans are chosen so that the extra pulse
 * merely moves the counter one CLK further along the source's own sequence
 * (never across a reload that would read a count not yet written). The
 * restored timing is therefore exact to within one CLK, the best any program
 * can do without seeing the CLK.
 *
 * Where the exact state needs a long wait (a mode 0 counter past terminal
 * count at an arbitrary count, a mode 3 low half, one-byte RW formats), the
 * wait is taken up to `maxWaitUs`; beyond that the closest state is used and
 * reported. See `pitLimitations` for what no sequence can recreate.
 */
import type { DeviceAccess, IoOp, IoProgram, Reconstructor, RestoreReport } from '../io.js';
import { BaremigError } from '../../errors.js';
import {
  PIT_PERIOD_NS,
  PIT_PORT_CONTROL,
  PORT61_GATE2,
  PORT61_OUT2,
  PORT_61,
  RW_LSB,
  RW_LSB_MSB,
  RW_MSB,
  RW_STATE_MSB,
  RW_STATE_WORD0,
  RW_STATE_WORD1,
  ST_NULL_COUNT,
  ST_OUT,
  controlWord,
  countBytes,
  countModulus,
  countWeight,
  countWritable,
  counterPort,
  decrementCount,
  downDistance,
  effectiveMode,
  latchCommand,
  mode2Load,
  mode3Load,
  mode3Odd,
  readBackCommand,
} from './registers.js';
import { PIT_SHADOW_KEY, type PitChannelShadow, type PitShadow } from './shadow.js';

/** A counter's place in its mode's sequence, as capture infers it (model.ts PitPhase without the transient 'load'). */
export type PitCapturedPhase = 'idle' | 'hold' | 'wait' | 'run' | 'done' | 'strobe' | 'extra';

export interface PitChannelState {
  /** Control word fields, from the read-back status (cross-checked with the shadow). */
  mode: number;
  rw: number;
  bcd: number;
  /** OUT and NULL COUNT, from the read-back status. */
  out: number;
  nullCount: number;
  /** Running count from the latch; bytes the RW format hides are inferred (see ceReadableMask). */
  ce: number;
  /** Which bits of `ce` were read: 0xffff, or 0x00ff / 0xff00 under a one-byte RW format. */
  ceReadableMask: number;
  gate: number;
  phase: PitCapturedPhase;
  // From the shadow:
  /** Reload value, raw 16 bits as written (0 = maximum). */
  count: number;
  countWritten: number;
  writeState: number;
  writeLatch: number;
  readState: number;
  countLatched: number;
  statusLatched: number;
}

export interface PitState {
  channels: PitChannelState[];
  /** Port 0x61 latch (GATE2 in bit 0). */
  port61: number;
}

/**
 * Where the restored state may knowingly differ from the source's; each is
 * explained in `pitLimitations`.
 */
export type PitDeviation = 'deadCount' | 'nullCountPending' | 'frozenOffByOne' | 'unreadableByte' | 'strobeAmbiguity' | 'staleLatch' | 'budget';

export const pitLimitations: ReadonlyArray<{ id: PitDeviation | 'clockPhase' | 'resetState' | 'busTiming'; text: string }> = [
  {
    id: 'clockPhase',
    text: 'The CLK phase of the destination chip is not visible to software, so a restore is exact to within one CLK (838 ns): each counter ends either exactly where the source was or one CLK further along its own sequence.',
  },
  {
    id: 'deadCount',
    text: 'The reload value (CR) cannot be read. In modes 0 and 4 once loaded, after a control word without count, and in mode 0 with a half-written count, no later guest action can use it (the next count write replaces it whole, a trigger does not load it), so the restore leaves the CR holding the count it loaded to set the running count. Unobservable by the guest.',
  },
  {
    id: 'nullCountPending',
    text: 'Modes 1, 2, 3, 5: to continue the current period (half, one-shot) and still reload the right value, the remaining count is written first and the reload value second (silicon takes a count written while counting at the next reload or trigger). The second write sets NULL COUNT, which then reads 1 in a read-back status until that reload or trigger, where the source read 0. Option exactNullCount waits for the chip to count there instead (at most one period) when the budget allows.',
  },
  {
    id: 'frozenOffByOne',
    text: 'A counter frozen (mode 0 half-written count; GATE2 low in modes 0, 2, 3, 4) keeps the count it had when the freeze came. Channels 0 and 1 cannot be frozen before the uncertain CLK of the restore, nor channel 2 when its count cannot be loaded directly (one-byte RW formats, a count of 1 in mode 2): the frozen count may then be one CLK off until the guest reprograms or ungates the counter.',
  },
  {
    id: 'unreadableByte',
    text: 'Under RW = LSB only or MSB only, a latched count yields one byte; no command reads the other. It is inferred: MSB = 0 for LSB-only (exact whenever the count came from a one-byte load and has not wrapped); LSB = 0 right after a load, 1 or 0 when OUT shows the mode 2 pulse or a strobe, else 0x80 for MSB-only (up to 128 CLKs off).',
  },
  {
    id: 'strobeAmbiguity',
    text: 'Modes 4 and 5: whether the strobe of the current count already happened is not visible once the counter, which wraps, has counted past the loaded value. Capture assumes it has not when the count is at or below the largest value that can have been loaded, so a guest may see one extra strobe on OUT (IRQ0 for counter 0), never a lost one.',
  },
  {
    id: 'staleLatch',
    text: 'A count or status the guest latched but has not read yet must be drained to read the current one. It is latched again on the source (rollback) and on the destination (last in the restore), with the same flags and byte order, but its value is the one at capture: the guest reads the state as of the pause, as if its latch command had run at the pause.',
  },
  {
    id: 'budget',
    text: 'Some exact states need the counter to count there: a mode 0 or 4 counter past terminal count at an arbitrary count (up to one 2^16 turn, 55 ms). maxWaitUs (default 60 ms) bounds those waits; beyond it a mode 0 counter is restored with OUT high and count 0, a mode 4 one as a control word without count (OUT high, no strobe, NULL COUNT 1). Waits without which OUT itself would be wrong (a mode 3 low half: up to half a period) or which a one-byte RW format imposes are always taken.',
  },
  {
    id: 'resetState',
    text: 'The restore assumes a freshly reset chip (no latched status pending): every counter is reprogrammed from its control word on, but a status latched before the restore would shadow the one recreated.',
  },
  {
    id: 'busTiming',
    text: 'The program counts time only in its delays. Each ISA port access takes about 1 µs on real hardware, so there the phase error grows by roughly one CLK per access between a counter\'s setup and the end; the agent should also honour sub-µs delays.',
  },
];

export interface PitReconstructorOptions {
  /** Longest wait the restore may take to reach an exact state (µs). Default 60 000. */
  maxWaitUs?: number;
  /** Wait (within maxWaitUs) rather than leave NULL COUNT set or the CR different. Default false. */
  exactNullCount?: boolean;
}

/** One CLK of margin for loads the guest made due just before the pause. */
const SETTLE_US = 1;

function isShadow(x: unknown): x is PitShadow {
  if (!x || typeof x !== 'object') return false;
  const s = x as PitShadow;
  return Array.isArray(s.channels) && s.channels.length === 3 && typeof s.port61 === 'number';
}

function pendingLatchedBytes(c: { statusLatched: number; countLatched: number }): number {
  return (c.statusLatched ? 1 : 0) + (c.countLatched === RW_STATE_WORD0 ? 2 : c.countLatched ? 1 : 0);
}

function num(x: number | Uint8Array | undefined): number {
  if (typeof x !== 'number') throw new BaremigError('DEVICE', 'PIT capture: expected a port read');
  return x;
}

/**
 * The byte a one-byte RW format hides (see pitLimitations 'unreadableByte').
 * `read` has the hidden byte 0.
 */
function inferCe(read: number, rw: number, m: number, out: number, gate: number, s: PitChannelShadow, nullCount: number, phase: PitCapturedPhase): number {
  const { cr, bcd } = s;
  if (rw === RW_LSB_MSB) return read;
  if (m === 2 && gate && !out) return 1; // the mode 2 pulse: CE is 1
  if ((m === 4 || m === 5) && !out) return 0; // strobe: CE is 0
  if (rw === RW_LSB) {
    // Past terminal count the counter wrapped from 0 to FFFF (9999): assume
    // recently, which also keeps the restore short; no later event depends on it.
    if (phase === 'done') return read | (bcd ? 0x9900 : 0xff00);
    // Counting down from a one-byte count (no count of 0, i.e. 2^16, since the
    // control word, or the current CR loaded and nonzero) the MSB is 0.
    const msbZero = s.maxCountWeight < countModulus(bcd) || (nullCount === 0 && cr !== 0);
    if (msbZero || phase === 'idle' || phase === 'wait' || phase === 'hold') return read;
    return read | (bcd ? 0x5000 : 0x8000); // unknown: the middle
  }
  const hi = read & 0xff00;
  // Counting down from the CR (NULL COUNT 0: it was loaded) and still showing its MSB: just loaded.
  const countdown = m === 2 || m === 3 || phase === 'run';
  if (countdown && nullCount === 0 && hi !== 0 && hi === cr) return hi;
  return hi | (bcd ? 0x50 : 0x80);
}

/**
 * `ceMin` is the running count with the bytes the RW format hides taken as
 * 0: the lowest value consistent with what was read, so that the mode 4/5
 * test below errs towards "strobe still pending" ('strobeAmbiguity').
 */
function inferPhase(m: number, s: PitChannelShadow, out: number, ceMin: number, gate: number, nullCount: number): PitCapturedPhase {
  if (m === 0 && s.writeState === RW_STATE_WORD1) return 'hold';
  if (!s.countWritten) return 'idle';
  switch (m) {
    case 0:
      return out ? 'done' : 'run';
    case 1:
      return out ? 'wait' : 'run';
    case 2:
      return 'run';
    case 3: {
      // After the settle CLK the extra CLK was entered by a pulse that saw the
      // current CR. Under LSB-only the MSB is known to be 0 if this half came
      // from the current (odd, so nonzero one-byte) CR, or no count of 0
      // (2^16) was written since the control word.
      const msbKnown = s.rw !== RW_LSB || nullCount === 0 || s.maxCountWeight < countModulus(s.bcd);
      return gate && out && ceMin === 0 && mode3Odd(s.cr) && msbKnown ? 'extra' : 'run';
    }
    case 4:
      if (!out) return 'strobe';
      return countWeight(ceMin, s.bcd) <= countWeight(s.cr, s.bcd) ? 'run' : 'done';
    default: // 5
      if (!s.triggered) return 'wait';
      if (!out) return 'strobe';
      return countWeight(ceMin, s.bcd) <= s.maxLoadWeight ? 'run' : 'wait';
  }
}

// ---- restore planning --------------------------------------------------------

interface Candidate {
  /** Channel 2: GATE2 during the wait (channels 0 and 1 have GATE tied high). */
  windowGate: number;
  /** Channel 2: load by a GATE2 rising edge after the count (modes 1, 5). */
  trigger: boolean;
  /** Control word of the setup (BCD is always the target's). */
  mode: number;
  rw: number;
  /** Count written in the setup. */
  v: number;
  /** CLK pulses that must pass after the setup (load pulse included). */
  pulses: number;
  post: IoOp[];
  devs: PitDeviation[];
}

export interface PitChannelPlan extends Candidate {
  channel: number;
  final: IoOp[];
}

export interface PitRestorePlan {
  program: IoProgram;
  channels: PitChannelPlan[];
  /** Sum of the delays, µs. */
  waitUs: number;
  deviations: PitDeviation[];
}

const out8 = (port: number, value: number): IoOp => ({ op: 'out', port, size: 1, value });
const in8 = (port: number): IoOp => ({ op: 'in', port, size: 1 });

function countOps(ch: number, v: number, rw: number): IoOp[] {
  return countBytes(v, rw).map((b) => out8(counterPort(ch), b));
}

interface Ctx {
  ch: number;
  s: PitChannelState;
  m: number;
  c: number;
  cr: number;
  bcd: number;
  rw: number;
  n: number;
  gate: number;
}

/** Counts worth trying as the setup count: every writable one under a one-byte format, a few otherwise. */
function values(x: Ctx, extra: number[]): number[] {
  if (x.rw === RW_LSB) return Array.from({ length: 256 }, (_, i) => i);
  if (x.rw === RW_MSB) return Array.from({ length: 256 }, (_, i) => i << 8);
  return [...new Set([x.c, x.cr, ...extra])];
}

/** Post-write of a live reload value (modes 1, 2, 3, 5). */
function livePost(x: Ctx, v: number): { post: IoOp[]; devs: PitDeviation[] } {
  if (v === x.cr && x.n === 0) return { post: [], devs: [] };
  return { post: countOps(x.ch, x.cr, x.rw), devs: x.n === 0 ? ['nullCountPending'] : [] };
}

function deadDevs(x: Ctx, v: number): PitDeviation[] {
  return v === x.cr ? [] : ['deadCount'];
}

/**
 * Position a free-running CE (idle, wait, hold): load c in mode 0 (GATE high),
 * which then counts down one per CLK exactly like a free-running CE.
 */
function positioning(x: Ctx, post: IoOp[], devs: PitDeviation[], windowGate = 1): Candidate {
  return { windowGate, trigger: false, mode: 0, rw: RW_LSB_MSB, v: x.c, pulses: 1, post, devs };
}

/** Style of arrival: at M pulses the counter is at the source state S0 ("A"), or one CLK before it ("B"). */
function arrive(
  x: Ctx,
  v: number,
  i0: number | null,
  nextReadsCr: boolean,
  prevOk: boolean,
  freeze: boolean,
): { pulses: number; exactCr: boolean } | null {
  if (i0 === null || i0 < 0) return null;
  const exactCr = v === x.cr && x.n === 0;
  // Style A: S0 after 1 + i0 pulses; the uncertain extra pulse must not use the CR unless it is the source's.
  // A counter frozen at the end (GATE2 low) must not freeze just after a reload: one count off is the promise.
  if (!nextReadsCr || (exactCr && !freeze)) return { pulses: 1 + i0, exactCr };
  // Style B: one CLK before S0 (needs a previous state in the same run that moves to S0 without the CR).
  if (i0 >= 1 && prevOk) return { pulses: i0, exactCr };
  return null;
}

function candidates(x: Ctx, phase: PitCapturedPhase): Candidate[] {
  const { ch, s, m, c, cr, bcd, rw } = x;
  const out: Candidate[] = [];
  const ctrl = out8(PIT_PORT_CONTROL, controlWord(ch, s.rw, s.mode, s.bcd));
  const frozen = ch === 2 && x.gate === 0 && (m === 0 || m === 2 || m === 3 || m === 4);
  const frozenDevs: PitDeviation[] = frozen ? ['frozenOffByOne'] : [];
  const P0 = countModulus(bcd);
  const W = (v: number) => countWeight(v, bcd);

  switch (phase) {
    case 'idle':
      out.push(positioning(x, [ctrl], deadDevs(x, c)));
      break;
    case 'wait': // modes 1/5: control word, then the count re-arms without loading
      out.push(positioning(x, [ctrl, ...countOps(ch, cr, rw)], x.n === 0 ? ['nullCountPending'] : []));
      break;
    case 'hold': {
      const post = x.n ? [ctrl] : [];
      if (ch === 2) out.push(positioning(x, post, deadDevs(x, c), 0)); // loaded with GATE2 low: frozen exactly
      else out.push(positioning(x, post, ['frozenOffByOne', ...deadDevs(x, c)]));
      break;
    }
    case 'run':
    case 'done':
    case 'strobe':
    case 'extra': {
      if (m === 0 || m === 4 || m === 1 || m === 5) {
        const live = m === 1 || m === 5;
        const trigger = live;
        if (live && ch !== 2) throw new BaremigError('DEVICE', `PIT counter ${ch}: mode ${m} ${phase} needs a GATE edge, which only counter 2 has`);
        // Frozen exactly: load the count itself with GATE2 low (loads still happen, counting does not).
        if (frozen && phase !== 'strobe' && phase !== 'done' && countWritable(c, rw)) {
          out.push({ windowGate: 0, trigger: false, mode: s.mode, rw, v: c, pulses: 1, post: [], devs: deadDevs(x, c) });
        }
        for (const v of values(x, [1, 2])) {
          if (!countWritable(v, rw)) continue;
          let i0: number | null = null;
          if (phase === 'run') i0 = downDistance(v, c, bcd);
          else if (phase === 'strobe') {
            i0 = downDistance(v, 1, bcd); // arrive one CLK early, at CE 1: the next CLK is the strobe
          } else if (phase === 'done') {
            let j = (P0 - W(c)) % P0; // CLKs after terminal count
            if (m === 4 && j === 0) j = P0; // mode 4: the strobe CLK is not 'done'
            i0 = decrementCount(0, j, bcd) === c ? W(v) + j : null;
          }
          if (i0 === null) continue;
          const pulses = 1 + i0;
          const { post, devs } = live ? livePost(x, v) : { post: [], devs: deadDevs(x, v) };
          out.push({ windowGate: 1, trigger, mode: s.mode, rw, v, pulses, post, devs: [...devs, ...frozenDevs] });
        }
        // Fallbacks when the wait is too long: the closest cheap state.
        if (phase === 'done') {
          const v = countWritable(1, rw) ? 1 : 0x100;
          if (m === 0) out.push({ windowGate: 1, trigger: false, mode: s.mode, rw, v, pulses: 1 + W(v), post: [], devs: ['budget', ...frozenDevs] });
          else out.push(positioning(x, [ctrl], ['budget', ...frozenDevs]));
        }
        break;
      }
      if (m === 2) {
        if (frozen && countWritable(c, rw) && mode2Load(c) === c) {
          const lp = livePost(x, c);
          out.push({ windowGate: 0, trigger: false, mode: s.mode, rw, v: c, pulses: 1, post: lp.post, devs: lp.devs });
        }
        for (const v of values(x, [2])) {
          if (!countWritable(v, rw)) continue;
          const L = mode2Load(v);
          const i0 = downDistance(L, c, bcd);
          if (i0 === null || i0 > W(L) - 1) continue;
          // The CLK after CE 1 reloads from the CR.
          const a = arrive(x, v, i0, c === 1, true, frozen);
          if (!a) continue;
          const lp = livePost(x, v);
          out.push({ windowGate: 1, trigger: false, mode: s.mode, rw, v, pulses: a.pulses, post: lp.post, devs: [...lp.devs, ...frozenDevs] });
        }
        break;
      }
      // m === 3
      if (frozen && countWritable(c, rw) && mode3Load(c) === c) {
        const lp = livePost(x, c);
        out.push({ windowGate: 0, trigger: false, mode: s.mode, rw, v: c, pulses: 1, post: lp.post, devs: lp.devs });
      }
      const high = frozen || s.out === 1;
      for (const v of values(x, [c + 2, 4, 3])) {
        if (!countWritable(v, rw) || v > 0xffff) continue;
        const L = mode3Load(v);
        const half = W(L) / 2;
        let i0: number | null = null;
        let nextReadsCr = false;
        let prevOk = true;
        if (phase === 'extra') {
          if (!mode3Odd(v)) continue; // the extra CLK only follows an odd count
          i0 = half; // the CLK after the high half
          nextReadsCr = true;
          prevOk = true; // (high, 2) -> extra decides on the CR's oddness, odd in both chips
        } else {
          const d = downDistance(L, c, bcd);
          if (d === null || d % 2 !== 0) continue;
          const j0 = d / 2;
          if (j0 >= half) continue;
          nextReadsCr = j0 === half - 1; // the next CLK ends the half
          if (high) i0 = j0;
          else {
            i0 = half + (mode3Odd(v) ? 1 : 0) + j0;
            prevOk = j0 >= 1; // the first state of the low half comes from a reload
          }
        }
        const a = arrive(x, v, i0, nextReadsCr, prevOk, frozen);
        if (!a) continue;
        const lp = livePost(x, v);
        out.push({ windowGate: 1, trigger: false, mode: s.mode, rw, v, pulses: a.pulses, post: lp.post, devs: [...lp.devs, ...frozenDevs] });
      }
      break;
    }
  }
  return out;
}

function weight(d: PitDeviation, exact: boolean): number {
  switch (d) {
    case 'deadCount':
    case 'nullCountPending':
      return exact ? 1 : 0;
    case 'frozenOffByOne':
      return 4;
    case 'budget':
      return 100;
    default:
      return 0;
  }
}

function choose(cands: Candidate[], opts: Required<PitReconstructorOptions>, ch: number): Candidate {
  if (cands.length === 0) throw new BaremigError('DEVICE', `PIT counter ${ch}: no restore sequence for the captured state`);
  const maxPulses = Math.floor((opts.maxWaitUs * 1000) / PIT_PERIOD_NS);
  const score = (k: Candidate) => k.devs.reduce((a, d) => a + weight(d, opts.exactNullCount), 0);
  const sorted = [...cands].sort((a, b) => score(a) - score(b) || a.pulses - b.pulses);
  return sorted.find((k) => k.pulses <= maxPulses) ?? [...cands].sort((a, b) => a.pulses - b.pulses)[0]!;
}

/** The last ops for a counter: half-written count, half-read count, latched count, latched status. */
function finalOps(ch: number, s: PitChannelState): IoOp[] {
  const ops: IoOp[] = [];
  // Write flip-flop: only the LSB (in mode 0 this is also what freezes a 'hold' counter).
  if (s.writeState === RW_STATE_WORD1) ops.push(out8(counterPort(ch), s.writeLatch));
  // Read flip-flop of the live count: read one byte (before any latch, which would answer instead).
  if (s.readState === RW_STATE_WORD1) ops.push(in8(counterPort(ch)));
  if (s.countLatched) {
    ops.push(out8(PIT_PORT_CONTROL, latchCommand(ch)));
    // LSB already read by the guest: read it away again.
    if (s.countLatched === RW_STATE_MSB && s.rw === RW_LSB_MSB) ops.push(in8(counterPort(ch)));
  }
  // Status last: once latched it answers the next read, ahead of the count.
  if (s.statusLatched) ops.push(out8(PIT_PORT_CONTROL, readBackCommand({ count: false, status: true, channels: [ch] })));
  return ops;
}

/** Other values of the byte a one-byte RW format hides, nearest to the inferred one first. */
function hiddenByteAlternatives(s: PitChannelState): number[] {
  const shift = s.ceReadableMask === 0x00ff ? 8 : 0;
  const guess = (s.ce >> shift) & 0xff;
  const order = Array.from({ length: 256 }, (_, b) => b).sort((a, b) => Math.abs(a - guess) - Math.abs(b - guess) || a - b);
  return order.filter((b) => b !== guess).map((b) => (s.ce & s.ceReadableMask) | (b << shift));
}

/** Build the restore program for a captured state (pure; exported for tests and the coordinator's estimates). */
export function planPitRestore(state: PitState, options: PitReconstructorOptions = {}): PitRestorePlan {
  const opts: Required<PitReconstructorOptions> = { maxWaitUs: options.maxWaitUs ?? 60_000, exactNullCount: options.exactNullCount ?? false };
  const p61 = state.port61 & ~(PORT61_GATE2 | PORT61_OUT2) & 0xff;
  const plans: PitChannelPlan[] = state.channels.map((s, ch) => {
    const x: Ctx = {
      ch,
      s,
      m: effectiveMode(s.mode),
      c: s.ce,
      cr: s.count,
      bcd: s.bcd,
      rw: s.rw,
      n: s.nullCount,
      gate: ch === 2 ? s.gate : 1,
    };
    let cands = candidates(x, s.phase);
    if (s.ceReadableMask !== 0xffff && !cands.some((k) => !k.devs.includes('budget'))) {
      // The inferred hidden byte put the count where no writable count leads
      // (BCD digits A-F): take the nearest hidden byte that is reachable.
      for (const alt of hiddenByteAlternatives(s)) {
        const more = candidates({ ...x, c: alt }, s.phase);
        if (more.some((k) => !k.devs.includes('budget'))) {
          cands = more;
          break;
        }
      }
    }
    const k = choose(cands, opts, ch);
    const devs = [...k.devs];
    if (s.ceReadableMask !== 0xffff) devs.push('unreadableByte');
    if (s.countLatched || s.statusLatched) devs.push('staleLatch');
    return { ...k, devs, channel: ch, final: finalOps(ch, s) };
  });

  const setupOps = (p: PitChannelPlan): IoOp[] => {
    const s = state.channels[p.channel]!;
    const ops: IoOp[] = [];
    if (p.channel === 2) ops.push(out8(PORT_61, p61 | (p.trigger ? 0 : p.windowGate)));
    ops.push(out8(PIT_PORT_CONTROL, controlWord(p.channel, p.rw, p.mode, s.bcd)), ...countOps(p.channel, p.v, p.rw));
    if (p.trigger) ops.push(out8(PORT_61, p61 | PORT61_GATE2));
    return ops;
  };

  // Longest wait first; each counter gets (M + 1/2) CLK periods from its setup to the end.
  const order = [...plans].sort((a, b) => b.pulses - a.pulses || a.channel - b.channel);
  const program: IoOp[] = [];
  let waitNs = 0;
  order.forEach((p, i) => {
    program.push(...setupOps(p));
    const here = Math.round((p.pulses + 0.5) * PIT_PERIOD_NS);
    const next = i + 1 < order.length ? Math.round((order[i + 1]!.pulses + 0.5) * PIT_PERIOD_NS) : 0;
    if (here > next) {
      program.push({ op: 'delay', us: (here - next) / 1000 });
      waitNs += here - next;
    }
  });
  for (const p of plans) program.push(...p.post);
  program.push(out8(PORT_61, state.port61 & ~PORT61_OUT2 & 0xff));
  for (const p of plans) program.push(...p.final);
  return { program, channels: plans, waitUs: waitNs / 1000, deviations: [...new Set(plans.flatMap((p) => p.devs))] };
}

export function createPitReconstructor(options: PitReconstructorOptions = {}): Reconstructor<PitState> {
  return {
    kind: 'pit',

    async capture(src: DeviceAccess): Promise<PitState> {
      const log = await src.shadow();
      const sh = log[PIT_SHADOW_KEY];
      if (!isShadow(sh)) throw new BaremigError('DEVICE', `PIT capture: the hypervisor has no '${PIT_SHADOW_KEY}' shadow`);
      // Reads here are of latched values only, never of the live count, so
      // the read flip-flop the guest sees is untouched (and a two-byte latch
      // read leaves it as it was even on a chip with a single flip-flop).
      const prog: IoOp[] = [{ op: 'delay', us: SETTLE_US }];
      const drained: number[] = [];
      sh.channels.forEach((c, ch) => {
        const n = pendingLatchedBytes(c);
        drained.push(n);
        for (let i = 0; i < n; i++) prog.push(in8(counterPort(ch)));
      });
      prog.push(out8(PIT_PORT_CONTROL, readBackCommand({ count: true, status: true, channels: [0, 1, 2] })));
      sh.channels.forEach((c, ch) => {
        prog.push(in8(counterPort(ch)));
        for (let i = 0; i < (c.rw === RW_LSB_MSB ? 2 : 1); i++) prog.push(in8(counterPort(ch)));
      });
      prog.push(in8(PORT_61));
      const res = await src.run(prog);
      let r = drained.reduce((a, b) => a + b, 0);
      const port61 = num(res.reads[res.reads.length - 1]);
      const gate2 = port61 & PORT61_GATE2 ? 1 : 0;
      const channels = sh.channels.map((c, ch): PitChannelState => {
        const status = num(res.reads[r++]);
        let read: number;
        if (c.rw === RW_LSB_MSB) {
          const lo = num(res.reads[r++]);
          read = lo | (num(res.reads[r++]) << 8);
        } else if (c.rw === RW_LSB) read = num(res.reads[r++]);
        else read = num(res.reads[r++]) << 8;
        const mode = (status >> 1) & 7;
        const rw = (status >> 4) & 3;
        const bcd = status & 1;
        if (mode !== c.mode || rw !== c.rw || bcd !== c.bcd) {
          throw new BaremigError('DEVICE', `PIT counter ${ch}: chip status 0x${status.toString(16)} disagrees with the shadow (mode ${c.mode}, RW ${c.rw}, BCD ${c.bcd})`, { status, shadow: c });
        }
        const out = status & ST_OUT ? 1 : 0;
        const gate = ch === 2 ? gate2 : 1;
        const nullCount = status & ST_NULL_COUNT ? 1 : 0;
        const m = effectiveMode(mode);
        const phase = inferPhase(m, c, out, read, gate, nullCount);
        const ce = inferCe(read, rw, m, out, gate, c, nullCount, phase);
        return {
          mode,
          rw,
          bcd,
          out,
          nullCount,
          ce,
          ceReadableMask: rw === RW_LSB ? 0x00ff : rw === RW_MSB ? 0xff00 : 0xffff,
          gate,
          phase,
          count: c.cr,
          countWritten: c.countWritten,
          writeState: c.writeState,
          writeLatch: c.writeLatch,
          readState: c.readState,
          countLatched: c.countLatched,
          statusLatched: c.statusLatched,
        };
      });
      if ((port61 & PORT61_OUT2 ? 1 : 0) !== channels[2]!.out) {
        throw new BaremigError('DEVICE', 'PIT capture: OUT2 on port 0x61 disagrees with counter 2 status');
      }
      return { channels, port61: port61 & ~PORT61_OUT2 };
    },

    async restore(dst: DeviceAccess, state: PitState): Promise<RestoreReport> {
      const plan = planPitRestore(state, options);
      const res = await dst.run(plan.program);
      const extra: Record<string, number> = { waitUs: plan.waitUs };
      for (const d of plan.deviations) extra[d] = plan.channels.filter((p) => p.devs.includes(d)).length;
      return { programs: 1, ops: plan.program.length, elapsedUs: res.elapsedUs, extra };
    },

    async rollback(src: DeviceAccess, state: PitState): Promise<void> {
      // Capture drained what the guest had latched; latch it again (values as of now, see 'staleLatch').
      const ops: IoOp[] = [];
      state.channels.forEach((s, ch) => {
        if (s.countLatched) {
          ops.push(out8(PIT_PORT_CONTROL, latchCommand(ch)));
          if (s.countLatched === RW_STATE_MSB && s.rw === RW_LSB_MSB) ops.push(in8(counterPort(ch)));
        }
        if (s.statusLatched) ops.push(out8(PIT_PORT_CONTROL, readBackCommand({ count: false, status: true, channels: [ch] })));
      });
      if (ops.length) await src.run(ops);
    },
  };
}

export const pitReconstructor: Reconstructor<PitState> = createPitReconstructor();
