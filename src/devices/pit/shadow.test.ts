import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PortAccess } from '../../sim/bus.js';
import { countWeight } from './registers.js';
import { type PitShadow, initialPitShadow, pitShadowSpec, reducePitShadow } from './shadow.js';
import { pitRig } from './testHarness.js';

const access = (dir: 'in' | 'out', port: number, value = 0): PortAccess => ({ dir, port, size: 1, value });

function feed(s: PitShadow, ...a: PortAccess[]): PitShadow {
  return a.reduce(reducePitShadow, s);
}

describe('pit shadow', () => {
  it('is pure and JSON-serialisable, and bounded', () => {
    const s0 = initialPitShadow();
    const copy = JSON.parse(JSON.stringify(s0)) as PitShadow;
    const s1 = reducePitShadow(s0, access('out', 0x43, 0x34));
    expect(s0).toEqual(copy); // input untouched
    expect(s1).not.toBe(s0);
    let s = s1;
    for (let i = 0; i < 10_000; i++) s = reducePitShadow(s, access('out', 0x40 + (i % 3), i & 0xff));
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
    expect(JSON.stringify(s).length).toBeLessThan(1200);
    expect(pitShadowSpec.ports).toEqual([
      [0x40, 0x43],
      [0x61, 0x61],
    ]);
  });

  it('keeps the reload value and a half-written count, which the chip cannot show', () => {
    let s = feed(initialPitShadow(), access('out', 0x43, 0xb4), access('out', 0x42, 0x9c));
    expect(s.channels[2]).toMatchObject({ mode: 2, rw: 3, writeState: 4, writeLatch: 0x9c, countWritten: 0 });
    s = feed(s, access('out', 0x42, 0x2e));
    expect(s.channels[2]).toMatchObject({ cr: 0x2e9c, writeState: 3, countWritten: 1 });
    s = feed(s, access('out', 0x43, 0x90), access('out', 0x42, 0x12)); // LSB only: MSB cleared
    expect(s.channels[2]!.cr).toBe(0x12);
  });

  it('follows latches: status before count, repeats ignored, control word drops the count latch', () => {
    let s = feed(initialPitShadow(), access('out', 0x43, 0xc2)); // count+status of counter 0
    expect(s.channels[0]).toMatchObject({ countLatched: 3, statusLatched: 1 });
    s = feed(s, access('out', 0x43, 0x00), access('in', 0x40));
    expect(s.channels[0]).toMatchObject({ countLatched: 3, statusLatched: 0 });
    s = feed(s, access('in', 0x40));
    expect(s.channels[0]).toMatchObject({ countLatched: 2 });
    s = feed(s, access('out', 0x43, 0x30));
    expect(s.channels[0]).toMatchObject({ countLatched: 0, readState: 3, writeState: 3 });
  });

  it('records a GATE2 trigger in modes 1/5 and the largest count it may have loaded', () => {
    let s = feed(initialPitShadow(), access('out', 0x43, 0xba), access('out', 0x42, 5), access('out', 0x42, 0));
    expect(s.channels[2]!.triggered).toBe(0);
    s = feed(s, access('out', 0x61, 1));
    expect(s.channels[2]).toMatchObject({ triggered: 1, maxLoadWeight: 5 });
    s = feed(s, access('out', 0x42, 9), access('out', 0x42, 0), access('out', 0x42, 2), access('out', 0x42, 0));
    expect(s.channels[2]).toMatchObject({ cr: 2, maxLoadWeight: 9 });
    s = feed(s, access('out', 0x61, 0), access('out', 0x61, 1));
    expect(s.channels[2]!.maxLoadWeight).toBe(countWeight(2, 0));
    expect(s.port61).toBe(1);
  });

  it('agrees with the chip on every flip-flop, latch flag, reload value and control field (property)', () => {
    const op = fc.oneof(
      fc.record({ dir: fc.constant('out' as const), port: fc.constantFrom(0x40, 0x41, 0x42, 0x43, 0x43, 0x61), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ dir: fc.constant('in' as const), port: fc.constantFrom(0x40, 0x41, 0x42, 0x61), value: fc.constant(0) }),
      fc.record({ dir: fc.constant('wait' as const), port: fc.constant(0), value: fc.integer({ min: 0, max: 5000 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const r = pitRig(123_456);
        for (const o of ops) {
          if (o.dir === 'wait') r.advanceNs(o.value);
          else if (o.dir === 'out') r.out(o.port, o.value);
          else r.in(o.port);
        }
        const chip = r.pit.inspect();
        const sh = r.shadow();
        expect(sh.port61).toBe(chip.port61);
        chip.channels.forEach((c, i) => {
          const s = sh.channels[i]!;
          expect({ mode: s.mode, rw: s.rw, bcd: s.bcd, count: s.cr === 0 ? 0x10000 : s.cr, writeState: s.writeState, readState: s.readState, countLatched: s.countLatched, statusLatched: s.statusLatched }).toEqual({
            mode: c.mode,
            rw: c.rw_mode,
            bcd: c.bcd,
            count: c.count,
            writeState: c.write_state,
            readState: c.read_state,
            countLatched: c.count_latched,
            statusLatched: c.status_latched,
          });
          if (c.write_state === 4) expect(s.writeLatch).toBe(c.write_latch);
          // No count since the control word <=> the chip is idle (or, in mode 0, holding a first byte).
          if (!s.countWritten) expect(['idle', 'hold']).toContain(c.phase);
          if (c.phase === 'idle') expect(s.countWritten).toBe(0);
        });
      }),
      { numRuns: 500 },
    );
  });
});
