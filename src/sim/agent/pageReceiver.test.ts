import { type Socket, connect } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BATCH_ZERO, FRAME_HEADER, FrameType, NAK_BAD_FRAME, NAK_BAD_PAGE, OPENING_BYTES, opening } from '../../protocol/pageStream.js';
import { GuestMemory, PAGE_SIZE } from '../guestMemory.js';
import { PageReceiver } from './pageReceiver.js';

const TOKEN = Buffer.alloc(32, 9);
const MiB = 1 << 20;

function header(type: number, n: number, arg: number): Buffer {
  const h = Buffer.alloc(FRAME_HEADER);
  h[0] = type;
  h.writeUInt16LE(n, 2);
  h.writeUInt32LE(arg >>> 0, 4);
  return h;
}

type Page = { index: number; fill: number | null }; // null: a zero page

/** A BATCH frame as the native sender writes it. */
function batch(pages: Page[]): Buffer {
  const entries = Buffer.alloc(4 * pages.length);
  pages.forEach((p, i) => entries.writeUInt32LE((p.fill === null ? p.index | BATCH_ZERO : p.index) >>> 0, 4 * i));
  const bodies = pages.filter((p) => p.fill !== null).map((p) => Buffer.alloc(PAGE_SIZE, p.fill!));
  return Buffer.concat([header(FrameType.Batch, pages.length, 0), entries, ...bodies]);
}

/** Connects, writes `bytes` in pieces of `cuts` sizes, collects what the receiver answers until it closes or `until` holds. */
async function exchange(port: number, bytes: Buffer, cuts: number[] = [bytes.length], until?: (got: Buffer) => boolean): Promise<Buffer> {
  const s: Socket = connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  const closed = new Promise<void>((resolve) => {
    s.on('data', (d) => {
      chunks.push(d);
      if (until?.(Buffer.concat(chunks))) resolve();
    });
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
  await new Promise<void>((r) => s.once('connect', () => r()));
  let off = 0;
  let i = 0;
  while (off < bytes.length) {
    const n = Math.max(1, cuts[i++ % cuts.length]!);
    await new Promise<void>((r) => s.write(bytes.subarray(off, off + n), () => r()));
    off += n;
  }
  await closed;
  s.destroy();
  return Buffer.concat(chunks);
}

const acks = (got: Buffer) => Array.from({ length: got.length / FRAME_HEADER }, (_, i) => [got[i * FRAME_HEADER]!, got.readUInt32LE(i * FRAME_HEADER + 4)]);

describe('native page stream receiver', () => {
  const rx = new PageReceiver('127.0.0.1');
  let port = 0;
  beforeAll(async () => {
    port = await rx.listen(0);
  });
  afterAll(() => rx.close());

  it('stores what a reference model stores, with the same digest, however the bytes are cut', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.uniqueArray(fc.nat(255), { minLength: 1, maxLength: 40 }).chain((idx) =>
            fc.tuple(...idx.sort((a, b) => a - b).map((index) => fc.record({ index: fc.constant(index), fill: fc.option(fc.integer({ min: 1, max: 255 }), { freq: 3 }) }))),
          ),
          { minLength: 1, maxLength: 4 },
        ),
        fc.array(fc.integer({ min: 1, max: 20_000 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(255), { maxLength: 20 }),
        async (batches, cuts, dirtyBefore) => {
          const mem = new GuestMemory(MiB);
          const model = new GuestMemory(MiB);
          // Some destination pages hold old bytes: a zero page must clear them; the rest is known zero.
          for (const p of dirtyBefore) {
            mem.fill(p * PAGE_SIZE, 16, 0x77);
            model.fill(p * PAGE_SIZE, 16, 0x77);
          }
          rx.open(TOKEN, mem);
          const count = batches.reduce((n, b) => n + b.length, 0);
          for (const b of batches) for (const p of b) model.fill(p.index * PAGE_SIZE, PAGE_SIZE, p.fill ?? 0);
          const stream = Buffer.concat([opening(TOKEN), ...batches.map(batch), header(FrameType.End, 0, count)]);
          const got = await exchange(port, stream, cuts, (g) => g.length >= FRAME_HEADER);
          expect(acks(got)).toEqual([[FrameType.Ack, count]]);
          expect(mem.bytes.equals(model.bytes)).toBe(true);
          expect((await mem.digest()).hex).toBe((await model.digest()).hex);
          expect(rx.pagesReceived).toBe(count);
          rx.closeSlot();
        },
      ),
      { numRuns: 40 },
    );
  });

  it('acknowledges every round and takes single-page RAW and ZERO frames too', async () => {
    const mem = new GuestMemory(MiB);
    mem.fill(5 * PAGE_SIZE, PAGE_SIZE, 1);
    rx.open(TOKEN, mem);
    const raw = Buffer.concat([header(FrameType.Raw, 0, 3), Buffer.alloc(PAGE_SIZE, 0xcd)]);
    const stream = Buffer.concat([opening(TOKEN), raw, header(FrameType.Zero, 0, 5), header(FrameType.End, 0, 2), batch([{ index: 7, fill: 2 }]), header(FrameType.End, 0, 1)]);
    const got = await exchange(port, stream, [4099, 7], (g) => g.length >= 2 * FRAME_HEADER);
    expect(acks(got)).toEqual([
      [FrameType.Ack, 2],
      [FrameType.Ack, 1],
    ]);
    expect(mem.read32(3 * PAGE_SIZE)).toBe(0xcdcdcdcd);
    expect(mem.isZeroPage(5)).toBe(true);
    expect(mem.read8(7 * PAGE_SIZE + 4095)).toBe(2);
    rx.closeSlot();
  });

  // [what, stream, NAK, whether RAM must stay untouched (a wrong END count is only known after the round's pages)]
  const refusals: Array<[string, () => Buffer, number, boolean?]> = [
    ['a wrong token', () => Buffer.concat([opening(Buffer.alloc(32, 1)), batch([{ index: 1, fill: 1 }])]), NAK_BAD_FRAME],
    [
      'another stream version',
      () => {
        const o = opening(TOKEN);
        o[4] = 1;
        return Buffer.concat([o, batch([{ index: 1, fill: 1 }])]);
      },
      NAK_BAD_FRAME,
    ],
    ['not a page stream at all', () => Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.alloc(OPENING_BYTES)]), NAK_BAD_FRAME],
    ['a batch naming a page outside RAM (after valid entries)', () => Buffer.concat([opening(TOKEN), batch([{ index: 1, fill: 1 }, { index: 2, fill: null }, { index: 256, fill: 3 }])]), NAK_BAD_PAGE],
    ['a zero page outside RAM', () => Buffer.concat([opening(TOKEN), batch([{ index: 0x7fffffff, fill: null }])]), NAK_BAD_PAGE],
    ['a RAW frame outside RAM', () => Buffer.concat([opening(TOKEN), header(FrameType.Raw, 0, 1 << 20), Buffer.alloc(PAGE_SIZE, 1)]), NAK_BAD_PAGE],
    ['an empty batch', () => Buffer.concat([opening(TOKEN), header(FrameType.Batch, 0, 0)]), NAK_BAD_FRAME],
    ['an oversized batch', () => Buffer.concat([opening(TOKEN), header(FrameType.Batch, 257, 0), Buffer.alloc(257 * 4)]), NAK_BAD_FRAME],
    ['a batch with the reserved word set', () => Buffer.concat([opening(TOKEN), header(FrameType.Batch, 1, 7), Buffer.alloc(4)]), NAK_BAD_FRAME],
    ['an unknown frame type', () => Buffer.concat([opening(TOKEN), header(77, 0, 0)]), NAK_BAD_FRAME],
    ['a batch out of page order', () => Buffer.concat([opening(TOKEN), batch([{ index: 4, fill: null }, { index: 3, fill: 1 }])]), NAK_BAD_FRAME],
    ['a batch naming a page twice', () => Buffer.concat([opening(TOKEN), batch([{ index: 3, fill: null }, { index: 3, fill: 1 }])]), NAK_BAD_FRAME],
    ['a wrong END count', () => Buffer.concat([opening(TOKEN), batch([{ index: 1, fill: 1 }]), header(FrameType.End, 0, 5)]), NAK_BAD_FRAME, false],
  ];
  for (const [what, bytes, nak, untouched = true] of refusals) {
    it(`refuses ${what} with NAK ${nak}${untouched ? ' before a byte of RAM changes' : ''}`, async () => {
      const mem = new GuestMemory(MiB);
      mem.fill(0, MiB, 0x3c);
      const before = Buffer.from(mem.bytes);
      rx.open(TOKEN, mem);
      const rejected = rx.rejected;
      const got = await exchange(port, bytes());
      expect(acks(got)).toEqual([[FrameType.Nak, nak]]);
      if (untouched) expect(mem.bytes.equals(before)).toBe(true);
      await vi.waitFor(() => expect(rx.rejected).toBe(rejected + 1));
      rx.closeSlot();
    });
  }

  it('refuses a stream when no migration is expected', async () => {
    rx.closeSlot();
    const got = await exchange(port, Buffer.concat([opening(TOKEN), batch([{ index: 1, fill: 1 }])]));
    expect(acks(got)).toEqual([[FrameType.Nak, NAK_BAD_FRAME]]);
  });

  it('writes no guest RAM once closeSlot has returned, even with the sender still sending', async () => {
    const mem = new GuestMemory(MiB);
    rx.open(TOKEN, mem);
    const s = connect({ host: '127.0.0.1', port });
    s.on('error', () => undefined);
    await new Promise<void>((r) => s.once('connect', () => r()));
    s.write(opening(TOKEN));
    let fill = 1;
    const pump = setInterval(() => {
      for (let i = 0; i < 8 && !s.destroyed; i++) s.write(batch(Array.from({ length: 64 }, (_, k) => ({ index: (k * 4 + fill) % 256, fill: (fill % 250) + 1 }))));
      fill++;
    }, 1);
    await new Promise((r) => setTimeout(r, 60));
    expect(rx.pagesReceived).toBeGreaterThan(0);
    rx.closeSlot();
    const snapshot = Buffer.from(mem.bytes);
    await new Promise((r) => setTimeout(r, 100));
    clearInterval(pump);
    s.destroy();
    expect(mem.bytes.equals(snapshot)).toBe(true);
  });

});
