import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffMs, classifyFailure } from './retry.js';

describe('backoff', () => {
  it('doubles from the base and stops at the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => backoffMs(n, 1000, 30_000))).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    expect(backoffMs(1000, 1000, 30_000)).toBe(30_000);
  });
  it('with jitter stays within [d/2, d] and never exceeds the cap', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 1, max: 100_000 }), fc.double({ min: 0, max: 1, noNaN: true }), (n, base, cap, j) => {
        const d = backoffMs(n, base, cap);
        const x = backoffMs(n, base, cap, () => j);
        expect(d).toBeLessThanOrEqual(cap);
        expect(x).toBeGreaterThanOrEqual(d / 2);
        expect(x).toBeLessThanOrEqual(d);
      }),
    );
  });
});

describe('classifyFailure', () => {
  const idle = { reachable: true, idle: true, cordoned: false };
  it('a dead, cordoned, busy or refusing destination: retry elsewhere', () => {
    expect(classifyFailure({ code: 'AGENT_UNREACHABLE', message: '', sourceRunning: true, destination: { ...idle, reachable: false } })).toMatchObject({ retry: true, destinationFault: true });
    expect(classifyFailure({ code: 'STREAM', message: '', sourceRunning: true, destination: { ...idle, cordoned: true } })).toMatchObject({ retry: true, destinationFault: true });
    expect(classifyFailure({ code: 'STATE', message: '', sourceRunning: true, destination: { ...idle, idle: false } })).toMatchObject({ retry: true, destinationFault: true });
    expect(classifyFailure({ code: 'BAD_REQUEST', message: '', sourceRunning: true, destination: idle })).toMatchObject({ retry: true, destinationFault: true });
  });
  it('the guest or the link: retry on the same destination', () => {
    for (const code of ['NOT_CONVERGING', 'TIMEOUT', 'STREAM', 'AGENT_UNREACHABLE', 'INTERNAL']) expect(classifyFailure({ code, message: '', sourceRunning: true, destination: idle })).toMatchObject({ retry: true, destinationFault: false });
  });
  it('never retries what another attempt cannot fix, or a guest no longer on its source', () => {
    for (const code of ['UNCERTAIN', 'CANCELLED', 'AUTH', 'USAGE']) expect(classifyFailure({ code, message: '', sourceRunning: true, destination: idle }).retry).toBe(false);
    expect(classifyFailure({ code: 'NOT_CONVERGING', message: '', sourceRunning: false, destination: idle }).retry).toBe(false);
  });
});
