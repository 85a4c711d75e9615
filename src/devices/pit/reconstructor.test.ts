import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PitChannelInternal, PitInternal } from './model.js';
import { type PitDeviation, type PitReconstructorOptions, createPitReconstructor, pitLimitations, planPitRestore } from './reconstructor.js';
import { countModulus, countWeight, decrementCount, effectiveMode, pulseTimeNs, pulsesAt, statusByte } from './registers.js';
import { type PitRig, pitRig } from './testHarness.js';

// ---- random guest activity ----------------------------------------------------

type GuestOp =
  | { k: 'ctrl'; ch: number; rw: number; mode: number; bcd: number }
  | { k: 'latch'; ch: number }
  | { k: 'rb'; v: number }
  | { k: 'w'; ch: number; b: number }
  | { k: 'r'; ch: number }
  | { k: 'g'; v: number }
  | { k: 'r61' }
  | { k: 't'; ns: number }
  // Macros, so that random sequences reach deep states (a programmed counter, a trigger, a few CLKs):
  | { k: 'prog'; ch: number; rw: number; mode: number; bcd: number; count: number }
  | { k: 'count'; ch: number; count: number; bytes: number }
  | { k: 'trig'; v: number }
  | { k: 'clk'; n: number };

const chArb = fc.integer({ min: 0, max: 2 });
/** Counts: mostly small (edges of every mode), sometimes anything. */
const countArb = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 12 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) });
const opArb: fc.Arbitrary<GuestOp> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ k: fc.constant('ctrl' as const), ch: chArb, rw: fc.integer({ min: 1, max: 3 }), mode: fc.integer({ min: 0, max: 7 }), bcd: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constant(1) }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('latch' as const), ch: chArb }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('rb' as const), v: fc.integer({ min: 0, max: 63 }) }) },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('w' as const), ch: chArb, b: fc.oneof(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 255 })) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('r' as const), ch: chArb }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('g' as const), v: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('r61' as const) }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('prog' as const), ch: chArb, rw: fc.integer({ min: 1, max: 3 }), mode: fc.integer({ min: 0, max: 7 }), bcd: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constant(1) }), count: countArb }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('count' as const), ch: chArb, count: countArb, bytes: fc.integer({ min: 1, max: 2 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('trig' as const), v: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('clk' as const), n: fc.oneof(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 70_000 })) }) },
  {
    weight: 5,
    arbitrary: fc.record({
      k: fc.constant('t' as const),
      ns: fc.oneof(
        { weight: 2, arbitrary: fc.constant(0) },
        { weight: 4, arbitrary: fc.integer({ min: 1, max: 3000 }) },
        { weight: 3, arbitrary: fc.integer({ min: 0, max: 300_000 }) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: 120_000_000 }) },
      ),
    }),
  },
);

const n838 = (n: number) => (n * 1e9) / 1_193_182;

function apply(r: PitRig, op: GuestOp): void {
  switch (op.k) {
    case 'ctrl':
      r.out(0x43, (op.ch << 6) | (op.rw << 4) | (op.mode << 1) | op.bcd);
      return;
    case 'latch':
      r.out(0x43, op.ch << 6);
      return;
    case 'rb':
      r.out(0x43, 0xc0 | op.v);
      return;
    case 'w':
      r.out(0x40 + op.ch, op.b);
      return;
    case 'r':
      r.in(0x40 + op.ch);
      return;
    case 'g':
      r.out(0x61, op.v);
      return;
    case 'r61':
      r.in(0x61);
      return;
    case 't':
      r.advanceNs(op.ns);
      return;
    case 'prog':
      r.out(0x43, (op.ch << 6) | (op.rw << 4) | (op.mode << 1) | op.bcd);
      if (op.rw !== 2) r.out(0x40 + op.ch, op.count & 0xff);
      if (op.rw !== 1) r.out(0x40 + op.ch, op.count >> 8);
      return;
    case 'count':
      r.out(0x40 + op.ch, op.count & 0xff);
      if (op.bytes === 2) r.out(0x40 + op.ch, op.count >> 8);
      return;
    case 'trig':
      r.out(0x61, op.v & ~1);
      r.out(0x61, op.v | 1);
      return;
    case 'clk':
      // n whole CLK periods from wherever we are in the current one
      r.advanceNs(Math.round(n838(op.n)));
  }
}

// ---- comparison -------------------------------------------------------------

const STATIC_FIELDS = ['mode', 'rw_mode', 'bcd', 'gate', 'read_state', 'write_state', 'count_latched', 'status_latched'] as const;

function statusOf(c: PitChannelInternal): number {
  return statusByte(c.out, c.null_count, c.rw_mode, c.mode, c.bcd);
}

/** The reload value is unusable by any later guest action (pitLimitations 'deadCount'). */
function deadCount(s: PitChannelInternal): boolean {
  const m = effectiveMode(s.mode);
  return s.phase === 'idle' || s.phase === 'hold' || ((m === 0 || m === 4) && (s.phase === 'run' || s.phase === 'done' || s.phase === 'strobe'));
}

/** Under BCD, readable bytes one count apart (e.g. 0x00 / 0x99 across a borrow). */
function bcdByteStep(s: PitChannelInternal, d: PitChannelInternal, mask: number): boolean {
  if (!s.bcd) return false;
  const a = s.ce & mask;
  const b = d.ce & mask;
  const step = effectiveMode(s.mode) === 3 ? 2 : 1;
  for (const [x, y] of [[a, b], [b, a]] as const) {
    if ((decrementCount(x, step, 1) & mask) === y) return true;
  }
  return false;
}

/** Timing mismatches between a destination and a source channel state, each with the limitation that explains it (or 'FAIL'). */
function timingDiff(s: PitChannelInternal, d: PitChannelInternal, frozen: boolean): Array<PitDeviation | `FAIL ${string}`> {
  const out: Array<PitDeviation | `FAIL ${string}`> = [];
  const m = effectiveMode(s.mode);
  if (d.null_count !== s.null_count) {
    out.push(s.null_count === 0 && d.null_count === 1 && [1, 2, 3, 5].includes(m) && s.phase !== 'idle' ? 'nullCountPending' : `FAIL null_count ${s.null_count}/${d.null_count}`);
  }
  const sameTiming = d.ce === s.ce && d.out === s.out && d.phase === s.phase;
  if (sameTiming) return out;
  const mask = s.rw_mode === 1 ? 0x00ff : s.rw_mode === 2 ? 0xff00 : 0xffff;
  const mod = countModulus(s.bcd);
  const step = m === 3 ? 2 : 1;
  const readableEqual = (d.ce & mask) === (s.ce & mask);
  // Modes 4/5: the source is past its strobe, the destination still expects it (and may be showing it).
  if ((m === 4 || m === 5) && (s.phase === 'done' || s.phase === 'wait') && (d.phase === 'run' || d.phase === 'strobe') && readableEqual) {
    out.push('strobeAmbiguity');
    if (d.ce !== s.ce) out.push('unreadableByte');
    return out;
  }
  // One-byte RW formats: the hidden byte was inferred, so after the uncertain
  // CLK the destination's OUT may already follow its own (different) count.
  // The phase may differ only where capture derives it from the count (modes 3-5).
  // (Mode 3, LSB only: a count showing 0 in the high half is the extra CLK only if the MSB is known to be 0.)
  if (mask === 0x00ff && m === 3 && d.ce === s.ce && d.out === s.out && s.phase === 'extra' && d.phase === 'run') {
    out.push('unreadableByte');
    return out;
  }
  if (mask !== 0xffff && d.ce !== s.ce && (d.phase === s.phase || m >= 3)) {
    if (readableEqual) {
      out.push('unreadableByte');
      return out;
    }
    // One CLK apart on the readable byte (the destination's guessed count may have crossed a byte boundary).
    const shift = mask === 0x00ff ? 0 : 8;
    const rd = ((d.ce & mask) >> shift) - ((s.ce & mask) >> shift);
    if (d.out === s.out && (Math.abs(rd) === step || Math.abs(rd) === 256 - step || (shift === 8 && Math.abs(rd) === 1) || bcdByteStep(s, d, mask))) {
      out.push('unreadableByte');
      if (frozen) out.push('frozenOffByOne');
      return out;
    }
  }
  if (frozen) {
    const dist = (countWeight(d.ce, s.bcd) - countWeight(s.ce, s.bcd) + mod) % mod;
    const oneClk = dist === step || dist === mod - step || (m === 4 && s.phase === 'strobe' && d.phase === 'run' && d.ce === 1);
    if (oneClk) {
      out.push('frozenOffByOne');
      return out;
    }
  }
  out.push(`FAIL timing src ${s.phase}/${s.ce}/${s.out} dst ${d.phase}/${d.ce}/${d.out}`);
  return out;
}

interface Verdict {
  fails: string[];
  /** Limitations met, as "kind:m<mode>:<phase>". */
  hits: string[];
  /** Source states seen, for coverage. */
  seen: string[];
}

/** Coverage labels of a source channel state. */
function coverage(i: number, c: PitChannelInternal): string[] {
  const m = effectiveMode(c.mode);
  const labels = [`m${m}:${c.phase}`, `rw${c.rw_mode}`];
  if (m === 3 && c.phase === 'run') labels.push(c.out ? 'm3:high' : 'm3:low');
  if (c.bcd) labels.push('bcd');
  if (i === 2 && c.gate === 0 && [0, 2, 3, 4].includes(m) && c.phase !== 'idle') labels.push('gateFrozen');
  if (c.write_state === 4) labels.push('halfWritten');
  if (c.read_state === 4) labels.push('halfRead');
  if (c.count_latched === 2 && c.rw_mode === 3) labels.push('latchHalfRead');
  if (c.count_latched && c.status_latched) labels.push('latchBoth');
  return labels;
}

/**
 * Destination vs source, per channel, on every field of inspect(). Time
 * fields are compared as phase within one CLK: the destination may be
 * exactly where the source was, or one CLK ahead or behind along the
 * source's sequence (src0/src1 and dst0/dst1 are the states at the end and
 * one CLK later). Absolute times (count_load_time, next_transition_time)
 * differ by construction and are not compared.
 */
function compare(src0: PitInternal, src1: PitInternal, dst0: PitInternal, dst1: PitInternal): Verdict {
  const fails: string[] = [];
  const hits: string[] = [];
  const seen: string[] = [];
  if (dst0.port61 !== src0.port61) fails.push(`port61 ${src0.port61}/${dst0.port61}`);
  for (let i = 0; i < 3; i++) {
    const S0 = src0.channels[i]!;
    const S1 = src1.channels[i]!;
    const D0 = dst0.channels[i]!;
    const D1 = dst1.channels[i]!;
    const tag = `ch${i} mode ${S0.mode} rw ${S0.rw_mode} ${S0.phase}`;
    const gateFrozen = i === 2 && S0.gate === 0 && [0, 2, 3, 4].includes(effectiveMode(S0.mode)) && S0.phase !== 'idle';
    const ctx = `:ch${i}:m${effectiveMode(S0.mode)}:${S0.phase}${gateFrozen ? ':frozen' : ''}`;
    seen.push(...coverage(i, S0));
    for (const f of STATIC_FIELDS) if (S0[f] !== D0[f]) fails.push(`${tag}: ${f} ${S0[f]}/${D0[f]}`);
    if (S0.write_state === 4 && S0.write_latch !== D0.write_latch) fails.push(`${tag}: write_latch ${S0.write_latch}/${D0.write_latch}`);
    if (S0.count !== D0.count) {
      if (deadCount(S0)) hits.push('deadCount' + ctx);
      else fails.push(`${tag}: count ${S0.count}/${D0.count}`);
    }
    // The recreated latches were taken last, from the restored state (and on the source, by rollback, from its state).
    if (D0.count_latched && D0.latched_count !== D0.ce) fails.push(`${tag}: dst latched ${D0.latched_count} != ce ${D0.ce}`);
    if (D0.status_latched && D0.status !== statusOf(D0)) fails.push(`${tag}: dst status ${D0.status} != ${statusOf(D0)}`);
    if (S0.count_latched || S0.status_latched) hits.push('staleLatch' + ctx);
    const frozen = S0.ce === S1.ce && S0.out === S1.out && D0.ce === D1.ce && D0.out === D1.out;
    const options = [timingDiff(S0, D0, frozen), timingDiff(S1, D0, frozen), timingDiff(S0, D1, frozen)];
    // The alignment that explains the most (exact first).
    const ok = options.filter((o) => o.every((x) => !x.startsWith('FAIL'))).sort((a, b) => a.length - b.length)[0];
    if (ok) hits.push(...ok.map((h) => h + ctx));
    else fails.push(`${tag}: ${options.map((o) => o.join(',')).join(' | ')}`);
  }
  return { fails, hits, seen };
}

/** Capture and rollback must leave the source exactly as a twin that was not captured, latched values aside. */
function compareTwin(src: PitInternal, twin: PitInternal): string[] {
  const fails: string[] = [];
  if (src.port61 !== twin.port61) fails.push('port61');
  for (let i = 0; i < 3; i++) {
    const s = src.channels[i]!;
    const t = twin.channels[i]!;
    for (const k of Object.keys(t) as Array<keyof PitChannelInternal>) {
      if (k === 'latched_count' || k === 'status') continue;
      if (s[k] !== t[k]) fails.push(`ch${i} ${k} ${t[k]}/${s[k]}`);
    }
    if (s.count_latched && s.latched_count !== s.ce) fails.push(`ch${i} rollback latched ${s.latched_count} != ${s.ce}`);
    if (s.status_latched && s.status !== statusOf(s)) fails.push(`ch${i} rollback status`);
  }
  return fails;
}

async function migrate(ops: GuestOp[], startSrc: number, startDst: number, opts: PitReconstructorOptions) {
  const src = pitRig(startSrc);
  const twin = pitRig(startSrc);
  for (const op of ops) {
    apply(src, op);
    apply(twin, op);
  }
  const rec = createPitReconstructor(opts);
  const state = await rec.capture(src.access);
  await rec.rollback!(src.access, state);
  twin.clock.set(src.clock.nowNs());
  const twinFails = compareTwin(src.pit.inspect(), twin.pit.inspect());
  const dst = pitRig(startDst);
  const report = await rec.restore(dst.access, state);
  const src0 = src.pit.inspect();
  const dst0 = dst.pit.inspect();
  src.nextPulse();
  dst.nextPulse();
  return { v: compare(src0, src.pit.inspect(), dst0, dst.pit.inspect()), twinFails, report, state, programs: dst.access.programs };
}

function runProperty(numRuns: number, opts: PitReconstructorOptions, check?: (hits: string[]) => void) {
  const hits = new Map<string, number>();
  const seen = new Map<string, number>();
  let restoreOps = 0;
  const t0 = performance.now();
  return fc
    .assert(
      fc.asyncProperty(
        fc.array(opArb, { maxLength: 30 }),
        fc.integer({ min: 0, max: 2_000_000_000 }),
        fc.integer({ min: 0, max: 2_000_000_000 }),
        async (ops, a, b) => {
          const r = await migrate(ops, a, b, opts);
          if (r.twinFails.length) throw new Error(`source disturbed: ${r.twinFails.join('; ')}`);
          if (r.v.fails.length) throw new Error(r.v.fails.join('\n'));
          if (r.programs !== 1 || r.report.programs !== 1) throw new Error('restore must be one program');
          restoreOps += r.report.ops;
          check?.(r.v.hits);
          for (const h of r.v.hits) hits.set(h, (hits.get(h) ?? 0) + 1);
          for (const l of r.v.seen) seen.set(l, (seen.get(l) ?? 0) + 1);
        },
      ),
      { numRuns },
    )
    .then(() => ({ hits, seen, ms: performance.now() - t0, meanOps: restoreOps / numRuns }));
}

/** Totals per limitation kind (the part before the first ':'). */
function byKind(hits: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, n] of hits) {
    const kind = k.split(':')[0]!;
    out[kind] = (out[kind] ?? 0) + n;
  }
  return out;
}

describe('pit reconstructor: property', () => {
  it('restores every hidden field (phase within one CLK) after 10,000 random guest sequences', async () => {
    const res = await runProperty(10_000, {});
    console.log(`pit property: 10000 runs in ${res.ms.toFixed(0)} ms, mean restore ${res.meanOps.toFixed(1)} ops`);
    console.log(`  limitation hits (channel states): ${JSON.stringify(byKind(res.hits))}`);
    console.log(`  source states covered: ${JSON.stringify(Object.fromEntries([...res.seen].sort()))}`);
    // The generator must reach the interesting states, or the property proves little.
    // (One-CLK states such as strobes and the mode 3 extra CLK are swept exhaustively below.)
    const phases = ['m0:idle', 'm0:hold', 'm0:run', 'm0:done', 'm1:wait', 'm1:run', 'm2:run', 'm3:high', 'm3:low', 'm4:run', 'm4:done', 'm5:wait', 'm5:run'];
    for (const l of [...phases, 'rw1', 'rw2', 'bcd', 'gateFrozen', 'halfWritten', 'halfRead', 'latchHalfRead', 'latchBoth']) {
      expect(res.seen.get(l) ?? 0, l).toBeGreaterThanOrEqual(10);
    }
    expect(res.ms).toBeLessThan(20_000);
  });

  it('with exactNullCount, NULL COUNT differs only for modes 1/5 waiting for a trigger', async () => {
    const res = await runProperty(2_000, { exactNullCount: true }, (hits) => {
      for (const h of hits) {
        if (!h.startsWith('nullCountPending:')) continue;
        const [, ch, m, phase, frozen] = h.split(':');
        // Modes 1/5 waiting for a trigger would need a trigger and a whole one-shot; a frozen counter
        // cannot count to its place; an inferred (unreadable) count may not lie on the CR's path.
        const explained = phase === 'wait' || frozen === 'frozen' || hits.some((o) => o.startsWith(`unreadableByte:${ch}:`) || o.startsWith(`strobeAmbiguity:${ch}:`));
        if (!explained) throw new Error(`exactNullCount left NULL COUNT pending on ${ch} ${m} ${phase}`);
      }
    });
    console.log(`pit property (exactNullCount): 2000 runs in ${res.ms.toFixed(0)} ms, hits ${JSON.stringify(byKind(res.hits))}`);
  });
});

describe('pit reconstructor: every CLK of short sequences', () => {
  it('restores each mode at every CLK (and between CLKs) of its first periods, counts 0-7, on any destination CLK phase', async () => {
    const seen = new Map<string, number>();
    let runs = 0;
    for (const mode of [0, 1, 2, 3, 4, 5]) {
      const ch = mode === 1 || mode === 5 ? 2 : 0; // modes 1/5 need the GATE2 trigger
      for (const rw of [3, 1]) {
        for (const count of [0, 1, 2, 3, 4, 5, 6, 7]) {
          if (count === 0 && rw === 1) continue; // 2^16 CLKs: covered by the random property
          const clks = count === 0 ? [0, 1, 2, 3] : Array.from({ length: 2 * count + 5 }, (_, i) => i);
          for (const k of clks) {
            for (const sub of [0, 500]) {
              for (const dstStart of [0, 419]) {
                const ops: GuestOp[] = [{ k: 'prog', ch, rw, mode, bcd: 0, count }];
                if (ch === 2) ops.push({ k: 'trig', v: 0 });
                ops.push({ k: 'clk', n: k }, { k: 't', ns: sub });
                const r = await migrate(ops, 1_000_000 + sub, 5_000_000 + dstStart, {});
                runs++;
                expect(r.twinFails, JSON.stringify(ops)).toEqual([]);
                expect(r.v.fails, JSON.stringify(ops)).toEqual([]);
                for (const l of r.v.seen) seen.set(l, (seen.get(l) ?? 0) + 1);
              }
            }
          }
        }
      }
    }
    for (const l of ['m0:run', 'm0:done', 'm1:run', 'm1:wait', 'm2:run', 'm3:high', 'm3:low', 'm3:extra', 'm4:run', 'm4:strobe', 'm4:done', 'm5:run', 'm5:strobe', 'm5:wait']) {
      expect(seen.get(l) ?? 0, l).toBeGreaterThan(0);
    }
    expect(runs).toBeGreaterThan(2000);
  });
});

/** Guest reads both bytes of a latched count (RW LSB/MSB). */
function readLatched(r: PitRig, ch: number): number {
  return r.in(0x40 + ch) | (r.in(0x40 + ch) << 8);
}

async function captureRestore(src: PitRig, opts: PitReconstructorOptions = {}, dstStart = 7_000_123) {
  const rec = createPitReconstructor(opts);
  const state = await rec.capture(src.access);
  await rec.rollback!(src.access, state);
  const dst = pitRig(dstStart);
  const report = await rec.restore(dst.access, state);
  return { state, dst, report };
}

const CLK_NS = 1e9 / 1_193_182;

describe('pit reconstructor: what the guest observes', () => {
  it('continues a mode 2 period in phase; NULL COUNT reads 1 until the reload (or 0 at once with exactNullCount)', async () => {
    for (const exactNullCount of [false, true]) {
      const src = pitRig(1_000_000_000);
      src.out(0x43, 0x34);
      src.out(0x40, 1000 & 0xff);
      src.out(0x40, 1000 >> 8);
      src.advanceNs(300_000);
      const { dst, report } = await captureRestore(src, { exactNullCount });
      expect(report.programs).toBe(1);
      const nullCount = (r: PitRig) => {
        r.out(0x43, 0xe2);
        return (r.in(0x40) >> 6) & 1;
      };
      expect(nullCount(src)).toBe(0);
      expect(nullCount(dst)).toBe(exactNullCount ? 0 : 1);
      if (!exactNullCount) expect(report.extra?.nullCountPending).toBeGreaterThanOrEqual(1);
      if (exactNullCount) expect(report.elapsedUs).toBeGreaterThan(100); // it waited for the chip to count there
      // The next four OUT0 transitions, relative to now, agree within one CLK.
      const edges = (r: PitRig) => {
        const t0 = r.clock.nowNs();
        const out: number[] = [];
        for (let i = 0; i < 4; i++) {
          const t = r.pit.nextEventNs()!;
          r.clock.set(t);
          r.pit.advanceTo(t);
          out.push(t - t0);
        }
        return out;
      };
      const a = edges(src);
      const b = edges(dst);
      a.forEach((t, i) => expect(Math.abs(t - b[i]!)).toBeLessThanOrEqual(CLK_NS + 1));
      expect(nullCount(dst)).toBe(0); // reloaded since
    }
  });

  it("'staleLatch': a count the guest latched before the pause reads as of the capture, on both nodes", async () => {
    const src = pitRig(3_000_000_000);
    src.out(0x43, 0x34);
    src.out(0x40, 0x50);
    src.out(0x40, 0xc3);
    src.advanceNs(1_000_000);
    src.out(0x43, 0x00); // guest latches...
    const guestLatched = src.pit.inspect().channels[0]!.latched_count;
    src.advanceNs(5_000_000); // ...and is paused before reading it
    const { dst } = await captureRestore(src);
    const srcNow = src.pit.inspect().channels[0]!.ce;
    const a = readLatched(src, 0);
    const b = readLatched(dst, 0);
    expect(a).toBe(srcNow);
    expect(Math.abs(a - b)).toBeLessThanOrEqual(1);
    expect(a).not.toBe(guestLatched);
  });

  it('rollback leaves a half-read latched count half read (MSB next), and a pending status first', async () => {
    const src = pitRig(3_000_000_000);
    src.out(0x43, 0x34);
    src.out(0x40, 0x00);
    src.out(0x40, 0x80);
    src.advanceNs(100_000);
    src.out(0x43, 0x00);
    src.in(0x40); // guest read the LSB only
    src.out(0x43, 0xe2); // and latched the status
    const { dst } = await captureRestore(src);
    for (const r of [src, dst]) {
      const c = r.pit.inspect().channels[0]!;
      expect(c).toMatchObject({ count_latched: 2, status_latched: 1 });
      expect(r.in(0x40) & ~0x40).toBe(0x80 | 0x30 | 0x04); // status: OUT high, RW 3, mode 2 (NULL COUNT: see nullCountPending)
      expect(r.in(0x40)).toBe(c.latched_count >> 8);
      expect(r.pit.inspect().channels[0]!.count_latched).toBe(0);
    }
  });

  it("'deadCount': counters differing only in a loaded CR (modes 0, 4) answer every later guest action alike (property)", () => {
    const obs = fc.oneof(
      fc.record({ k: fc.constant('out' as const), port: fc.constantFrom(0x40, 0x40, 0x43, 0x61), v: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ k: fc.constant('in' as const), port: fc.constantFrom(0x40, 0x61), v: fc.constant(0) }),
      fc.record({ k: fc.constant('t' as const), port: fc.constant(0), v: fc.integer({ min: 0, max: 100_000 }) }),
    );
    fc.assert(
      fc.property(fc.constantFrom(0, 4), fc.integer({ min: 3, max: 2000 }), fc.integer({ min: 1, max: 2 }), fc.array(obs, { maxLength: 30 }), (mode, n, m, ops) => {
        const a = pitRig(5_000_000_400);
        const b = pitRig(5_000_000_400);
        a.out(0x43, 0x30 | (mode << 1));
        a.out(0x40, n & 0xff);
        a.out(0x40, n >> 8);
        for (let i = 0; i < m; i++) {
          a.nextPulse();
          b.nextPulse();
        }
        // b loads n - m one pulse later than a loaded n: same counting element from then on.
        b.out(0x43, 0x30 | (mode << 1));
        b.out(0x40, (n - m) & 0xff);
        b.out(0x40, (n - m) >> 8);
        a.nextPulse();
        b.nextPulse();
        const [x, y] = [a.pit.inspect().channels[0]!, b.pit.inspect().channels[0]!];
        // (write_latch too is dead outside a half-written count)
        expect({ ...x, count: 0, count_load_time: 0, write_latch: 0 }).toEqual({ ...y, count: 0, count_load_time: 0, write_latch: 0 });
        expect(x.count).not.toBe(y.count);
        for (const o of ops) {
          if (o.k === 't') {
            a.advanceNs(o.v);
            b.advanceNs(o.v);
          } else if (o.k === 'out') {
            a.out(o.port, o.v);
            b.out(o.port, o.v);
          } else expect(a.in(o.port)).toBe(b.in(o.port));
          expect(a.irq.at(-1)?.level).toBe(b.irq.at(-1)?.level);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("'frozenOffByOne': a half-written mode 0 count on counter 0 stays frozen, within one count of the source", async () => {
    let offByOne = 0;
    for (const start of [0, 300, 600]) {
      const src = pitRig(2_000_000_000);
      src.out(0x43, 0x30);
      src.out(0x40, 0x00);
      src.out(0x40, 0x40);
      src.advanceNs(50_000);
      src.out(0x40, 0x11); // first byte: counting stops
      const { dst, report } = await captureRestore(src, {}, 9_000_000 + start);
      expect(report.extra?.frozenOffByOne).toBe(1);
      dst.advanceNs(1_000_000);
      src.advanceNs(1_000_000);
      src.out(0x43, 0x00);
      dst.out(0x43, 0x00);
      const d = readLatched(src, 0) - readLatched(dst, 0);
      expect([0, 1]).toContain(d);
      offByOne += d;
      // The second byte then loads the same count on both.
      src.out(0x40, 0x22);
      dst.out(0x40, 0x22);
      src.nextPulse();
      dst.nextPulse();
      expect(dst.pit.inspect().channels[0]!.ce).toBe(0x2211);
      expect(src.pit.inspect().channels[0]!.ce).toBe(0x2211);
    }
    expect(offByOne).toBeGreaterThanOrEqual(0);
  });

  it("'unreadableByte': under LSB-only the MSB of a 2^16 count is guessed; the LSB the guest can read matches", async () => {
    const src = pitRig(2_000_000_000);
    src.out(0x43, 0x10); // counter 0, LSB only, mode 0
    src.out(0x40, 0x00); // 2^16
    src.advanceNs(10_000_000);
    const { dst, state, report } = await captureRestore(src);
    expect(state.channels[0]!.ceReadableMask).toBe(0x00ff);
    expect(report.extra?.unreadableByte).toBe(1);
    src.out(0x43, 0x00);
    dst.out(0x43, 0x00);
    const a = src.in(0x40);
    const b = dst.in(0x40);
    expect((a - b + 256) % 256).toBeLessThanOrEqual(1);
    // The MSB really differs: terminal count comes at another time on the destination.
    expect(src.pit.inspect().channels[0]!.ce >> 8).not.toBe(dst.pit.inspect().channels[0]!.ce >> 8);
  });

  it("'strobeAmbiguity': a mode 4 counter wrapped past its strobe is restored with the strobe still to come (one extra, never one lost)", async () => {
    const src = pitRig(4_000_000_000);
    src.out(0x43, 0x38);
    src.out(0x40, 5);
    src.out(0x40, 0);
    const load = pulsesAt(src.clock.nowNs()) + 1;
    // strobe at load+5, then FFFF at load+6 ... CE 3 at load+6+65532
    src.clock.set(pulseTimeNs(load + 6 + 65_532) + 100);
    src.pit.advanceTo(src.clock.nowNs());
    expect(src.pit.inspect().channels[0]).toMatchObject({ phase: 'done', ce: 3 });
    const { dst, state } = await captureRestore(src);
    expect(state.channels[0]!.phase).toBe('run');
    src.irq.length = 0;
    dst.irq.length = 0;
    src.advanceNs(20_000);
    dst.advanceNs(20_000);
    expect(src.irq).toEqual([]);
    expect(dst.irq.map((e) => e.level)).toEqual([false, true]);
  });

  it("'budget': past terminal count, exact at the cost of a wait; with a small budget OUT high and count 0", async () => {
    const mk = () => {
      const src = pitRig(2_000_000_000);
      src.out(0x43, 0x30);
      src.out(0x40, 2);
      src.out(0x40, 0);
      src.advanceNs(50_000_000); // ~59 660 CLKs past terminal count: CE ~ 5 900
      return src;
    };
    const exact = await captureRestore(mk());
    expect(exact.report.extra?.budget).toBeUndefined();
    expect(exact.report.elapsedUs).toBeGreaterThan(40_000); // counted from 1 through 0 and round to the CE
    const s = mk();
    const srcCe = s.pit.inspect().channels[0]!.ce;
    const cheap = await captureRestore(s, { maxWaitUs: 100 });
    expect(cheap.report.extra?.budget).toBe(1);
    expect((planPitRestore(cheap.state, { maxWaitUs: 100 }).channels[0]!.pulses * CLK_NS) / 1000).toBeLessThan(100);
    const c = cheap.dst.pit.inspect().channels[0]!;
    expect([c.out, c.phase]).toEqual([1, 'done']);
    expect(Math.abs(exact.dst.pit.inspect().channels[0]!.ce - srcCe)).toBeLessThanOrEqual(1);
    expect(c.ce).not.toBe(srcCe);
  });

  it('refuses to capture without the shadow, or when the shadow disagrees with the chip', async () => {
    const src = pitRig(0);
    const rec = createPitReconstructor();
    await expect(rec.capture({ run: (p) => src.access.run(p), shadow: async () => ({}) })).rejects.toMatchObject({ code: 'DEVICE' });
    src.bus.rawOut(0x43, 1, 0x34); // a write the hypervisor did not see
    await expect(rec.capture(src.access)).rejects.toMatchObject({ code: 'DEVICE' });
  });

  it('restores in one program of port writes and delays, setup first and latches last', () => {
    const src = pitRig(0);
    src.out(0x43, 0x34);
    const plan = planPitRestore({
      port61: 0,
      channels: [0, 1, 2].map((ch) => ({
        mode: 2, rw: 3, bcd: 0, out: 1, nullCount: 0, ce: 100, ceReadableMask: 0xffff, gate: ch === 2 ? 0 : 1, phase: 'run' as const,
        count: 200, countWritten: 1, writeState: 3, writeLatch: 0, readState: 4, countLatched: 3, statusLatched: 1,
      })),
    });
    const kinds = plan.program.map((o) => o.op);
    expect(kinds.filter((k) => k === 'delay').length).toBeGreaterThanOrEqual(1);
    const firstDelay = kinds.indexOf('delay');
    // Every control word that programs a counter precedes the wait; the latches come after everything.
    const lastLatch = plan.program.findLastIndex((o) => o.op === 'out' && o.port === 0x43 && (o.value & 0xc0) === 0xc0);
    expect(lastLatch).toBe(plan.program.length - 1);
    expect(plan.program.slice(0, firstDelay).some((o) => o.op === 'out' && o.port === 0x43)).toBe(true);
  });
});

describe('pit reconstructor: documented limitations', () => {
  it('lists every deviation kind it can report', () => {
    const ids = new Set(pitLimitations.map((l) => l.id));
    for (const d of ['deadCount', 'nullCountPending', 'frozenOffByOne', 'unreadableByte', 'strobeAmbiguity', 'staleLatch', 'budget'] as const) expect(ids.has(d)).toBe(true);
  });
});
