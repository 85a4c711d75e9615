import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type ConvergenceState, PAGE_WIRE_BYTES, Progress, STOP_ROUND_TRIPS, decide, expectedDowntimeMs, isStalled } from './convergence.js';

const base: ConvergenceState = {
  round: 2,
  maxRounds: 30,
  expectedDowntimeMs: 500,
  downtimeLimitMs: 300,
  dirtyRateBps: 1e6,
  bandwidthBps: 1e8,
  dirtyHistory: [1000, 500],
  onStall: 'raise',
  limitStepFactor: 1.5,
  maxDowntimeLimitMs: 2000,
};

describe('expected downtime', () => {
  it('counts transfer, digest, devices and round trips', () => {
    const ms = expectedDowntimeMs({ dirtyPages: 1000, stateBytes: 8192, bandwidthBps: 125e6, deviceRestoreMs: 7, rttMs: 0.5 });
    const transfer = ((1000 * PAGE_WIRE_BYTES + 8192) / 125e6) * 1000;
    expect(ms).toBeCloseTo(transfer + 1000 * 0.005 + 7 + STOP_ROUND_TRIPS * 0.5, 6);
  });
});

describe('convergence decision', () => {
  it('stops when the estimate fits, continues while it shrinks', () => {
    expect(decide({ ...base, expectedDowntimeMs: 299 })).toEqual({ action: 'stop' });
    expect(decide(base)).toEqual({ action: 'continue' });
  });

  it('a stall raises the limit step by step, or aborts per option', () => {
    const stalled = { ...base, dirtyRateBps: 2e8 };
    expect(isStalled(stalled)).toMatch(/dirties 200\.0 MB\/s/);
    expect(decide(stalled)).toMatchObject({ action: 'raise-limit', newLimitMs: 450 });
    expect(decide({ ...stalled, onStall: 'abort' })).toMatchObject({ action: 'abort' });
    expect(decide({ ...stalled, downtimeLimitMs: 2000, expectedDowntimeMs: 3000 })).toMatchObject({ action: 'abort' });
  });

  it('a dirty set that stops shrinking is a stall', () => {
    expect(isStalled({ ...base, dirtyHistory: [5000, 1000, 950, 1000] })).toMatch(/2 rounds/);
    expect(isStalled({ ...base, dirtyHistory: [4000, 2000, 1000, 500] })).toBeNull();
    expect(isStalled({ ...base, dirtyHistory: [1000, 950, 500] })).toBeNull();
    // A whole working set re-dirtied each round measures just under the bandwidth: still a stall.
    expect(isStalled({ ...base, dirtyRateBps: 0.96e8 })).toMatch(/dirties/);
  });

  it('the round cap ends pre-copy: raise to what is needed if allowed, else abort', () => {
    expect(decide({ ...base, round: 30, expectedDowntimeMs: 900 })).toMatchObject({ action: 'raise-limit', newLimitMs: 900 });
    expect(decide({ ...base, round: 30, expectedDowntimeMs: 9000 })).toMatchObject({ action: 'abort' });
  });

  it('never loops forever: a stalled run ends within a bounded number of rounds', () => {
    fc.assert(
      fc.property(fc.double({ min: 1, max: 1e5, noNaN: true }), fc.double({ min: 1, max: 1000, noNaN: true }), fc.integer({ min: 1, max: 50 }), fc.constantFrom<'raise' | 'abort'>('raise', 'abort'), (expected, limit0, maxRounds, onStall) => {
        let limit = limit0;
        for (let round = 1; round <= maxRounds + 1; round++) {
          const d = decide({ ...base, round, maxRounds, expectedDowntimeMs: expected, downtimeLimitMs: limit, dirtyRateBps: 2e8, maxDowntimeLimitMs: Math.max(limit0, 5000), onStall });
          if (d.action === 'stop' || d.action === 'abort') return;
          if (d.action === 'raise-limit') {
            expect(d.newLimitMs).toBeGreaterThan(limit);
            limit = d.newLimitMs;
            if (expected <= limit) return;
          }
        }
        throw new Error('did not end');
      }),
    );
  });
});

describe('progress', () => {
  it('never goes backwards and stays below 1 until bumped', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(1e9), fc.nat(1e9))), (steps) => {
        const p = new Progress();
        let last = 0;
        for (const [s, r] of steps) {
          const v = p.update(s, r);
          expect(v).toBeGreaterThanOrEqual(last);
          expect(v).toBeLessThan(1);
          last = v;
        }
        expect(p.bump(1)).toBe(1);
      }),
    );
  });
});
