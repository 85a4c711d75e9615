import { randomFillSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PageReceiver } from '../sim/agent/pageReceiver.js';
import { GuestMemory, PAGE_SIZE } from '../sim/guestMemory.js';
import { PageSender } from './pageSender.js';
import { BATCH_MAX_PAGES, FRAME_HEADER } from './pageStream.js';

const TOKEN = Buffer.alloc(32, 5);
const MiB = 1 << 20;

/** RAM whose pages are random, zero or a single set byte, by index. */
function sourceRam(size: number): GuestMemory {
  const m = new GuestMemory(size);
  for (let p = 0; p < m.pages; p++) {
    if (p % 3 === 0) m.writeBytes(p * PAGE_SIZE, randomFillSync(Buffer.alloc(PAGE_SIZE)));
    else if (p % 3 === 1) m.write8(p * PAGE_SIZE + (p % PAGE_SIZE), 1);
  }
  return m;
}

/** Wire bytes of a round: a header and one entry per page, the non-zero pages, END. */
function wireBytes(pages: number, nonZero: number): number {
  return Math.ceil(pages / BATCH_MAX_PAGES) * FRAME_HEADER + 4 * pages + nonZero * PAGE_SIZE + FRAME_HEADER;
}

describe('native page stream sender', () => {
  const rx = new PageReceiver('127.0.0.1');
  let port = 0;
  beforeAll(async () => {
    port = await rx.listen(0);
  });
  afterAll(() => rx.close());

  it('moves every page, then only the marked ones, and both sides agree on the digest', async () => {
    const src = sourceRam(4 * MiB);
    const dst = new GuestMemory(4 * MiB);
    rx.open(TOKEN, dst);
    const tx = await PageSender.connect('127.0.0.1', port, TOKEN);
    const all = await tx.sendRound(src, null);
    const zero = Math.floor((src.pages + 1) / 3);
    expect(all).toMatchObject({ pages: src.pages, zeroPages: zero, wireBytes: wireBytes(src.pages, src.pages - zero) });
    expect(dst.bytes.equals(src.bytes)).toBe(true);
    // The guest writes on; the next round sends only the marked pages.
    src.syncDirty();
    src.write32(7 * PAGE_SIZE, 0xdeadbeef);
    src.write32(8 * PAGE_SIZE + 12, 0xfeedface); // a page never written before (known zero until now)
    src.fill(300 * PAGE_SIZE, PAGE_SIZE, 0);
    const { bitmap } = src.syncDirty();
    const r2 = await tx.sendRound(src, bitmap);
    expect(r2).toMatchObject({ pages: 3, zeroPages: 1, wireBytes: wireBytes(3, 2) });
    expect(dst.bytes.equals(src.bytes)).toBe(true);
    expect((await dst.digest()).hex).toBe((await src.digest()).hex);
    tx.close();
    rx.closeSlot();
  });

  it('sends exactly the marked pages, however sparse or dense the marks', async () => {
    const src = sourceRam(2 * MiB);
    const dst = new GuestMemory(2 * MiB);
    rx.open(TOKEN, dst);
    const tx = await PageSender.connect('127.0.0.1', port, TOKEN);
    await tx.sendRound(src, null);
    let seed = 7;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    for (const density of [0, 0.001, 0.02, 0.3, 1]) {
      src.syncDirty();
      let marked = 0;
      for (let p = 0; p < src.pages; p++) {
        // The last pages and single marks between long clean stretches are where a skip-ahead would slip.
        if (rnd() < density || (density > 0 && p === src.pages - 1)) {
          src.write8(p * PAGE_SIZE + 1, (p + 3) & 0xff);
          marked++;
        }
      }
      const { bitmap, count } = src.syncDirty();
      expect(count).toBe(marked);
      const r = await tx.sendRound(src, bitmap);
      expect(r.pages).toBe(marked);
      expect(dst.bytes.equals(src.bytes)).toBe(true);
    }
    tx.close();
    rx.closeSlot();
  });

  it('keeps to a rate cap', async () => {
    const src = new GuestMemory(8 * MiB);
    src.writeBytes(0, randomFillSync(Buffer.alloc(8 * MiB))); // through the write tracking, as every guest write
    rx.open(TOKEN, new GuestMemory(8 * MiB));
    const tx = await PageSender.connect('127.0.0.1', port, TOKEN);
    const rate = 40e6;
    const r = await tx.sendRound(src, null, rate);
    expect(r.zeroPages).toBe(0);
    // The bucket starts full with 10 ms of burst; everything else waits for tokens.
    const floorMs = ((r.wireBytes - rate * 0.01) / rate) * 1000;
    expect(r.ms).toBeGreaterThanOrEqual(floorMs * 0.97);
    expect(r.ms).toBeLessThan(floorMs * 1.5 + 50);
    tx.close();
    rx.closeSlot();
  });

  it('fails with the reason when the destination refuses the stream', async () => {
    rx.open(Buffer.alloc(32, 1), new GuestMemory(MiB));
    const tx = await PageSender.connect('127.0.0.1', port, TOKEN);
    await expect(tx.sendRound(sourceRam(MiB), null)).rejects.toThrow(/refused the page stream \(code 2\)|closed by the destination/);
    expect(tx.alive).toBe(false);
    rx.closeSlot();
  });

  it('fails, and stops sending, when the destination goes away mid-round', async () => {
    const src = new GuestMemory(64 * MiB);
    src.writeBytes(0, randomFillSync(Buffer.alloc(64 * MiB)));
    rx.open(TOKEN, new GuestMemory(64 * MiB));
    const tx = await PageSender.connect('127.0.0.1', port, TOKEN);
    const round = tx.sendRound(src, null, 100e6); // ~0.7 s at this cap
    await new Promise((r) => setTimeout(r, 100));
    expect(tx.live.active).toBe(true);
    expect(tx.live.wireBytes).toBeGreaterThan(0);
    rx.closeSlot();
    await expect(round).rejects.toThrow(/page stream to 127\.0\.0\.1:\d+/);
    expect(tx.live.active).toBe(false);
  });
});
