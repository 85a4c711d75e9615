import { createHash } from 'node:crypto';
import { type StreamDone, type StreamHandle, simAccel } from './native.js';

export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;
/** Digest tree: page hashes → 1 MiB group hashes → root. */
export const DIGEST_GROUP_SHIFT = 20;
const PAGE_HASH_BYTES = 8;
/** Groups hashed between two yields to the event loop (64 MiB, a few ms). */
const DIGEST_SLICE_GROUPS = 64;
const PAGES_PER_GROUP = 1 << (DIGEST_GROUP_SHIFT - 12);
export const MAX_RAM_BYTES = 4 * 1024 ** 3;

/**
 * Guest-physical RAM with write tracking at 4 KiB pages, the way a hypervisor
 * tracks writes (EPT dirty bits; device DMA through an IOMMU with dirty
 * tracking). Every write marks its page. `syncDirty()` takes the dirty set and
 * clears it in one step (single-threaded: nothing writes in between).
 *
 * Hot path: writes are plain typed-array stores plus two byte stores for the
 * marks; nothing allocates.
 */
export class GuestMemory {
  readonly bytes: Buffer;
  readonly pages: number;
  private dirty: Uint8Array;
  private spare: Uint8Array;
  private readonly stalePage: Uint8Array;
  private readonly staleGroup: Uint8Array;
  private readonly pageHash: Buffer;
  private readonly groupHash: Buffer;
  /** Pages known to be zero since their last write (fresh RAM is): receiving a zero page there costs nothing. */
  private readonly knownZero: Uint8Array;
  private readonly view: DataView;

  /**
   * @param backing the node's physical RAM to use (all zero, at least `size`
   *        bytes); without it, fresh zeroed memory is allocated.
   */
  constructor(
    readonly size: number,
    backing?: Buffer,
  ) {
    if (!Number.isInteger(size) || size <= 0 || size % (1 << DIGEST_GROUP_SHIFT) !== 0 || size > MAX_RAM_BYTES) {
      throw new RangeError(`guest RAM size must be a positive multiple of 1 MiB up to 4 GiB, got ${size}`);
    }
    if (backing && backing.length < size) throw new RangeError(`backing RAM of ${backing.length} bytes is smaller than ${size}`);
    this.bytes = backing ? backing.subarray(0, size) : Buffer.alloc(size);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    this.pages = size / PAGE_SIZE;
    this.dirty = new Uint8Array(this.pages);
    this.spare = new Uint8Array(this.pages);
    const groups = size / (1 << DIGEST_GROUP_SHIFT);
    // Fresh RAM is all zeros: every page hash is known without reading it.
    this.stalePage = new Uint8Array(this.pages);
    this.staleGroup = new Uint8Array(groups).fill(1);
    this.pageHash = Buffer.allocUnsafe(this.pages * PAGE_HASH_BYTES);
    const zh = Buffer.alloc(PAGE_HASH_BYTES);
    zh.writeBigUInt64LE(simAccel().zeroPageHash());
    this.pageHash.fill(zh); // the 8-byte pattern repeated (a loop of copies took 18 ms at 1 GiB)
    this.groupHash = Buffer.alloc(groups * 8);
    this.knownZero = new Uint8Array(this.pages).fill(1);
  }

  inRange(addr: number, len: number): boolean {
    return Number.isInteger(addr) && Number.isInteger(len) && addr >= 0 && len >= 0 && addr + len <= this.size;
  }

  private check(addr: number, len: number): void {
    if (!this.inRange(addr, len)) {
      throw new RangeError(`guest-physical range 0x${addr.toString(16)}+${len} outside RAM of ${this.size} bytes`);
    }
  }

  private mark(addr: number, len: number): void {
    const first = Math.floor(addr / PAGE_SIZE);
    const last = Math.floor((addr + len - 1) / PAGE_SIZE);
    for (let p = first; p <= last; p++) {
      this.dirty[p] = 1;
      this.stalePage[p] = 1;
      this.knownZero[p] = 0;
      this.staleGroup[Math.floor(p / PAGES_PER_GROUP)] = 1;
    }
  }

  read8(addr: number): number {
    this.check(addr, 1);
    return this.bytes[addr]!;
  }
  read16(addr: number): number {
    this.check(addr, 2);
    return this.view.getUint16(addr, true);
  }
  read32(addr: number): number {
    this.check(addr, 4);
    return this.view.getUint32(addr, true);
  }
  read64(addr: number): bigint {
    this.check(addr, 8);
    return this.view.getBigUint64(addr, true);
  }
  write8(addr: number, v: number): void {
    this.check(addr, 1);
    this.bytes[addr] = v;
    this.mark(addr, 1);
  }
  write16(addr: number, v: number): void {
    this.check(addr, 2);
    this.view.setUint16(addr, v, true);
    this.mark(addr, 2);
  }
  write32(addr: number, v: number): void {
    this.check(addr, 4);
    this.view.setUint32(addr, v >>> 0, true);
    this.mark(addr, 4);
  }
  write64(addr: number, v: bigint): void {
    this.check(addr, 8);
    this.view.setBigUint64(addr, BigInt.asUintN(64, v), true);
    this.mark(addr, 8);
  }

  /** A view (no copy) of guest memory; callers must not keep it across guest execution. */
  view8(addr: number, len: number): Buffer {
    this.check(addr, len);
    return this.bytes.subarray(addr, addr + len);
  }

  /** A copy of guest memory. */
  readBytes(addr: number, len: number): Buffer {
    this.check(addr, len);
    return Buffer.from(this.bytes.subarray(addr, addr + len));
  }

  writeBytes(addr: number, data: Uint8Array): void {
    this.check(addr, data.length);
    if (data.length === 0) return;
    this.bytes.set(data, addr);
    this.mark(addr, data.length);
  }

  fill(addr: number, len: number, value: number): void {
    this.check(addr, len);
    if (len === 0) return;
    this.bytes.fill(value, addr, addr + len);
    this.mark(addr, len);
  }

  /**
   * The page stream's sender (native, on a thread of its own): one round of
   * every page (or those marked in `bitmap`) and END on socket `fd`, each page
   * hashed as sent; `rate` bytes/s caps it (0: no cap). live ← [pages,
   * zeroPages, wireBytes, -] while it runs. The caller keeps `bitmap` unchanged
   * until `done`.
   */
  sendPages(fd: number, bitmap: Uint8Array | null, rate: number, live: Float64Array, done: StreamDone): StreamHandle {
    return simAccel().sendPages(fd, this.bytes, bitmap, this.pageHash, this.stalePage, this.knownZero, rate, live, done);
  }

  /**
   * The page stream's receiver (native, on a thread of its own): checks the
   * opening against `token`, then stores pages (hashing each) and acknowledges
   * each round until the sender closes, a frame is refused or the stream is
   * cancelled. live ← [pages, -, wireBytes, rounds].
   */
  receivePages(fd: number, token: Uint8Array, live: Float64Array, done: StreamDone): StreamHandle {
    return simAccel().receivePages(fd, token, this.bytes, this.pageHash, this.stalePage, this.staleGroup, this.knownZero, live, done);
  }

  isZeroPage(page: number): boolean {
    const off = page * PAGE_SIZE;
    return this.bytes.compare(ZERO_PAGE, 0, PAGE_SIZE, off, off + PAGE_SIZE) === 0;
  }

  /** Clears the dirty set (dirty logging starts now). */
  clearDirty(): void {
    this.dirty.fill(0);
  }

  /**
   * Takes the dirty set and clears it in one step. The returned array is
   * owned by GuestMemory and valid until the next syncDirty() call.
   */
  syncDirty(): { bitmap: Uint8Array; count: number } {
    const taken = this.dirty;
    this.dirty = this.spare;
    this.spare = taken;
    this.dirty.fill(0);
    return { bitmap: taken, count: simAccel().orCount(taken) };
  }

  /**
   * The live dirty map, one byte per page (nonzero: written since the last
   * clear or sync), for a hypervisor binding that syncs it itself: the
   * native agent's HAL (hypervisor/hosted/napi_hal.c) ORs it into its own
   * bitmap and zeroes it in one step on the main thread, where the guest
   * runs too. The array changes at every syncDirty(): ask again each time.
   */
  dirtyMap(): Uint8Array {
    return this.dirty;
  }

  /** Pages currently marked dirty (not cleared). */
  dirtyCount(): number {
    return simAccel().orCount(this.dirty);
  }

  /**
   * Digest of all of RAM: a two-level tree (XXH64 of each 4 KiB page →
   * XXH64 of each 1 MiB group's 256 page hashes → SHA-256 of the group
   * hashes). Page and group hashes are cached and a write marks them stale,
   * so a digest costs only what changed since the previous one. That lets
   * the coordinator warm the cache during pre-copy and verify at pause for
   * the price of the last round's pages. Hashing runs natively (simAccel).
   *
   * Yields to the event loop between slices of groups so that a running
   * guest and the agent keep being served. A page is hashed in one
   * synchronous step and a later write marks it stale again, so yielding is
   * safe; a final pass without yielding picks up what changed meanwhile.
   */
  async digest(): Promise<{ hex: string; rehashedPages: number }> {
    const accel = simAccel();
    const groups = this.staleGroup.length;
    let rehashed = 0;
    for (let g = 0; g < groups; g += DIGEST_SLICE_GROUPS) {
      rehashed += accel.refreshDigest(this.bytes, this.stalePage, this.staleGroup, this.pageHash, this.groupHash, g, Math.min(groups, g + DIGEST_SLICE_GROUPS));
      if (g + DIGEST_SLICE_GROUPS < groups) await new Promise((r) => setImmediate(r));
    }
    rehashed += accel.refreshDigest(this.bytes, this.stalePage, this.staleGroup, this.pageHash, this.groupHash, 0, groups);
    return { hex: createHash('sha256').update(this.groupHash).digest('hex'), rehashedPages: rehashed };
  }
}

export const ZERO_PAGE: Buffer = Buffer.alloc(PAGE_SIZE);
