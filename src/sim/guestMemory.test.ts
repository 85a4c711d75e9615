import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemory, PAGE_SIZE } from './guestMemory.js';

const MiB = 1 << 20;

describe('GuestMemory write tracking', () => {
  it('marks every page a write touches and syncs-and-clears in one step', () => {
    const m = new GuestMemory(4 * MiB);
    m.clearDirty();
    m.write32(PAGE_SIZE - 2, 0xdeadbeef); // straddles pages 0 and 1
    m.write8(10 * PAGE_SIZE, 1);
    m.writeBytes(20 * PAGE_SIZE + 100, new Uint8Array(2 * PAGE_SIZE)); // pages 20, 21, 22
    const { bitmap, count } = m.syncDirty();
    expect(count).toBe(6);
    expect([...bitmap.keys()].filter((p) => bitmap[p])).toEqual([0, 1, 10, 20, 21, 22]);
    expect(m.dirtyCount()).toBe(0);
    m.write16(5 * PAGE_SIZE, 7);
    expect(m.syncDirty().count).toBe(1);
  });

  it('rejects out-of-range access without writing', () => {
    const m = new GuestMemory(MiB);
    expect(() => m.write32(MiB - 2, 1)).toThrow(RangeError);
    expect(() => m.readBytes(-1, 4)).toThrow(RangeError);
    expect(() => m.writeBytes(MiB, new Uint8Array(1))).toThrow(RangeError);
    expect(m.dirtyCount()).toBe(0);
  });

  it('refuses sizes that are not whole MiB or above 4 GiB', () => {
    expect(() => new GuestMemory(MiB + 4096)).toThrow(/multiple of 1 MiB/);
    expect(() => new GuestMemory(5 * 1024 ** 3)).toThrow(/4 GiB/);
  });
});

describe('GuestMemory digest', () => {
  it('equal content ⇔ equal digest, and incremental digests equal full ones', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(2 * MiB - 8), fc.integer({ min: 0, max: 0xffffffff })), { maxLength: 40 }), async (writes) => {
        const a = new GuestMemory(2 * MiB);
        const b = new GuestMemory(2 * MiB);
        await a.digest(); // warm a's cache, then change it: only the written pages are rehashed
        for (const [addr, v] of writes) a.write32(addr & ~3, v);
        for (const [addr, v] of writes) b.write32(addr & ~3, v);
        const da = await a.digest();
        const db = await b.digest();
        expect(da.hex).toBe(db.hex);
        expect(da.rehashedPages).toBeLessThanOrEqual(writes.length);
        if (writes.length) {
          const [addr] = writes[0]!;
          b.write8(addr, (b.read8(addr) + 1) & 0xff);
          expect((await b.digest()).hex).not.toBe(da.hex);
        }
      }),
      { numRuns: 40 },
    );
  });
});
