import { createHash } from 'node:crypto';

export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;
/** Digest chunk: 1 MiB. Chunk hashes are cached and recomputed only where written. */
export const DIGEST_CHUNK_SHIFT = 20;
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
  private readonly staleChunk: Uint8Array;
  private readonly chunkHash: Buffer;
  private readonly view: DataView;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size <= 0 || size % (1 << DIGEST_CHUNK_SHIFT) !== 0 || size > MAX_RAM_BYTES) {
      throw new RangeError(`guest RAM size must be a positive multiple of 1 MiB up to 4 GiB, got ${size}`);
    }
    // Buffer.alloc of this size is calloc-backed: untouched pages cost nothing.
    this.bytes = Buffer.alloc(size);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    this.pages = size / PAGE_SIZE;
    this.dirty = new Uint8Array(this.pages);
    this.spare = new Uint8Array(this.pages);
    const chunks = size / (1 << DIGEST_CHUNK_SHIFT);
    this.staleChunk = new Uint8Array(chunks).fill(1);
    this.chunkHash = Buffer.alloc(chunks * 32);
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
    for (let p = first; p <= last; p++) this.dirty[p] = 1;
    const c0 = Math.floor(addr / (1 << DIGEST_CHUNK_SHIFT));
    const c1 = Math.floor((addr + len - 1) / (1 << DIGEST_CHUNK_SHIFT));
    for (let c = c0; c <= c1; c++) this.staleChunk[c] = 1;
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
   * Incoming page from a migration stream (destination side). Copies 4 KiB
   * from `src` at `srcOffset`, or zeroes the page when `src` is null.
   * Zeroing a page that is already zero is skipped, so a fresh destination
   * does not fault in memory for zero pages.
   */
  storePage(page: number, src: Uint8Array | null, srcOffset = 0): void {
    const off = page * PAGE_SIZE;
    if (src === null) {
      if (this.bytes.compare(ZERO_PAGE, 0, PAGE_SIZE, off, off + PAGE_SIZE) === 0) return;
      this.bytes.fill(0, off, off + PAGE_SIZE);
    } else {
      this.bytes.set(src.subarray(srcOffset, srcOffset + PAGE_SIZE), off);
    }
    this.staleChunk[off >>> DIGEST_CHUNK_SHIFT] = 1;
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
    let count = 0;
    for (let i = 0; i < taken.length; i++) count += taken[i]!;
    return { bitmap: taken, count };
  }

  /** Pages currently marked dirty (not cleared). */
  dirtyCount(): number {
    let n = 0;
    for (let i = 0; i < this.dirty.length; i++) n += this.dirty[i]!;
    return n;
  }

  /**
   * SHA-256 over the SHA-256 of every 1 MiB chunk. Chunk hashes are cached
   * and recomputed only for chunks written since the last digest, so a digest
   * taken at pause costs only what changed since the previous one.
   */
  digest(): { hex: string; rehashedChunks: number } {
    let rehashed = 0;
    const chunk = 1 << DIGEST_CHUNK_SHIFT;
    for (let c = 0; c < this.staleChunk.length; c++) {
      if (this.staleChunk[c] === 0) continue;
      const h = createHash('sha256').update(this.bytes.subarray(c * chunk, (c + 1) * chunk)).digest();
      h.copy(this.chunkHash, c * 32);
      this.staleChunk[c] = 0;
      rehashed++;
    }
    const hex = createHash('sha256').update(this.chunkHash).digest('hex');
    return { hex, rehashedChunks: rehashed };
  }
}

export const ZERO_PAGE: Buffer = Buffer.alloc(PAGE_SIZE);
