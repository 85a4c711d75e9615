import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FRAME_HEADER, FrameType, NAK_BAD_FRAME, NAK_BAD_PAGE, PageStreamDecoder, opening } from './pageStream.js';

const TOKEN = Buffer.alloc(32, 9);

function frame(type: number, arg: number, body?: Buffer): Buffer {
  const h = Buffer.alloc(FRAME_HEADER);
  h[0] = type;
  h.writeUInt32LE(arg, 4);
  return body ? Buffer.concat([h, body]) : h;
}

function collect(token = TOKEN, pages = 1 << 20) {
  const got: Array<[number, string | null]> = [];
  const ends: number[] = [];
  const fails: Array<[string, number]> = [];
  const dec = new PageStreamDecoder(token, {
    page: (i, src, off) => {
      if (i >= pages) return false;
      got.push([i, src ? src.subarray(off, off + 4096).toString('hex') : null]);
      return true;
    },
    end: (n) => ends.push(n),
    fail: (r, nak) => fails.push([r, nak]),
  });
  return { dec, got, ends, fails };
}

describe('page stream decoder', () => {
  it('decodes the same frames whatever the chunking', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.nat(1000), fc.nat(255)), { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 50 }),
        (pages, cuts) => {
          const parts = [opening(TOKEN)];
          for (const [zero, idx, fill] of pages) parts.push(zero ? frame(FrameType.Zero, idx) : frame(FrameType.Raw, idx, Buffer.alloc(4096, fill)));
          parts.push(frame(FrameType.End, pages.length));
          const stream = Buffer.concat(parts);
          const { dec, got, ends, fails } = collect();
          let off = 0;
          let i = 0;
          while (off < stream.length) {
            const n = cuts[i++ % cuts.length]!;
            dec.push(stream.subarray(off, off + n));
            off += n;
          }
          expect(fails).toEqual([]);
          expect(ends).toEqual([pages.length]);
          expect(got).toEqual(pages.map(([zero, idx, fill]) => [idx, zero ? null : Buffer.alloc(4096, fill).toString('hex')]));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuses a wrong token before any page is applied', () => {
    const { dec, got, fails } = collect();
    dec.push(Buffer.concat([opening(Buffer.alloc(32, 1)), frame(FrameType.Zero, 1)]));
    expect(got).toEqual([]);
    expect(fails[0]![1]).toBe(NAK_BAD_FRAME);
  });

  it('refuses pages outside RAM, unknown frame types and a wrong END count', () => {
    let c = collect(TOKEN, 4);
    c.dec.push(Buffer.concat([opening(TOKEN), frame(FrameType.Zero, 4)]));
    expect(c.fails[0]![1]).toBe(NAK_BAD_PAGE);
    c = collect();
    c.dec.push(Buffer.concat([opening(TOKEN), frame(77, 0)]));
    expect(c.fails[0]![0]).toMatch(/unknown page stream frame type 77/);
    c = collect();
    c.dec.push(Buffer.concat([opening(TOKEN), frame(FrameType.Zero, 0), frame(FrameType.End, 5)]));
    expect(c.fails[0]![0]).toMatch(/5 frames announced, 1 received/);
    // After a failure nothing more is applied.
    c.dec.push(frame(FrameType.Zero, 2));
    expect(c.got).toHaveLength(1);
  });
});

describe('page stream decoder with the native run path', () => {
  it('stores the same RAM and the same digest whatever the chunking, as the one-frame path does', async () => {
    const { GuestMemory } = await import('../sim/guestMemory.js');
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.boolean(), fc.nat(255), fc.nat(255)), { minLength: 1, maxLength: 24 }),
        fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 20 }),
        async (pages, cuts) => {
          const parts = [opening(TOKEN)];
          for (const [zero, idx, fill] of pages) parts.push(zero ? frame(FrameType.Zero, idx) : frame(FrameType.Raw, idx, Buffer.alloc(4096, fill + 1)));
          parts.push(frame(FrameType.End, pages.length));
          const stream = Buffer.concat(parts);
          const fast = new GuestMemory(1 << 20);
          const slow = new GuestMemory(1 << 20);
          fast.fill(0, 1 << 20, 0x5a); // non-zero RAM: zero frames must clear it
          slow.fill(0, 1 << 20, 0x5a);
          let ends = 0;
          const sink = (m: InstanceType<typeof GuestMemory>, run: boolean) => ({
            page: (i: number, src: Buffer | null, off: number) => (i < m.pages ? (m.storePage(i, src, off), true) : false),
            end: () => void ends++,
            fail: (r: string) => {
              throw new Error(r);
            },
            ...(run ? { applyRun: (c: Buffer, off: number, st: Float64Array) => m.applyFrames(c, off, st) } : {}),
          });
          const a = new PageStreamDecoder(TOKEN, sink(fast, true));
          const b = new PageStreamDecoder(TOKEN, sink(slow, false));
          let off = 0;
          let i = 0;
          while (off < stream.length) {
            const n = cuts[i++ % cuts.length]!;
            a.push(stream.subarray(off, off + n));
            b.push(stream.subarray(off, off + n));
            off += n;
          }
          expect(ends).toBe(2);
          expect(fast.bytes.equals(slow.bytes)).toBe(true);
          expect((await fast.digest()).hex).toBe((await slow.digest()).hex);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('refuses a page outside RAM on the native path too', async () => {
    const { GuestMemory } = await import('../sim/guestMemory.js');
    const m = new GuestMemory(1 << 20);
    const fails: number[] = [];
    const dec = new PageStreamDecoder(TOKEN, { page: () => true, end: () => {}, fail: (_r, nak) => fails.push(nak), applyRun: (c, off, st) => m.applyFrames(c, off, st) });
    dec.push(Buffer.concat([opening(TOKEN), frame(FrameType.Raw, 256, Buffer.alloc(4096, 1))]));
    expect(fails).toEqual([NAK_BAD_PAGE]);
  });
});
