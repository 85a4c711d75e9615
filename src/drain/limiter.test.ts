import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LinkBudget } from './limiter.js';

describe('LinkBudget', () => {
  it('holds each link to perLink; excess waits and goes when a slot frees', async () => {
    const b = new LinkBudget(1);
    const r1 = await b.acquire(['a', 'b']);
    let second = false;
    const p2 = b.acquire(['b', 'c']).then((r) => {
      second = true;
      return r;
    });
    const r3 = await b.acquire(['d', 'e']); // unrelated links are not held up
    await new Promise((r) => setImmediate(r));
    expect(second).toBe(false);
    expect(b.inUse('b')).toBe(1);
    r1();
    const r2 = await p2;
    expect(second).toBe(true);
    r2();
    r3();
    r1(); // releasing twice is harmless
    expect(['a', 'b', 'c', 'd', 'e'].map((k) => b.inUse(k))).toEqual([0, 0, 0, 0, 0]);
  });

  it('never exceeds perLink under random load, and serves everyone', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 25 }), fc.integer({ min: 1, max: 3 }), async (jobs, perLink) => {
        const b = new LinkBudget(perLink);
        let peak = 0;
        const use = new Map<string, number>();
        await Promise.all(
          jobs.map(async ([x, y, ms]) => {
            const keys = [`l${x}`, `l${y}`];
            const rel = await b.acquire(keys);
            for (const k of new Set(keys)) {
              use.set(k, (use.get(k) ?? 0) + 1);
              peak = Math.max(peak, use.get(k)!);
            }
            await new Promise((r) => setTimeout(r, ms));
            for (const k of new Set(keys)) use.set(k, use.get(k)! - 1);
            rel();
          }),
        );
        expect(peak).toBeLessThanOrEqual(perLink);
        expect(b.peak).toBe(peak);
      }),
      { numRuns: 40 },
    );
  });
});
