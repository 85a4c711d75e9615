import { PAGE_SIZE } from '../sim/guestMemory.js';

/**
 * Agent-to-agent page stream: a plain TCP byte stream (no masking, no
 * message framing beyond this), so pages cost 8 bytes of header and zero
 * pages only the header.
 *
 *   opening   'BMPS' u8 version u8[3] 0, token[32]            (sender → receiver, once)
 *   frame     u8 type, u8 0, u16 0, u32 arg                   (8 bytes)
 *     RAW  arg = page index, followed by 4096 bytes
 *     ZERO arg = page index
 *     END  arg = frames since the previous END (a round's count)
 *   ack       u8 ACK, u8 0, u16 0, u32 count                  (receiver → sender, per END)
 *     NAK  arg = error code: the receiver refused the stream
 */
export const STREAM_MAGIC = 0x53504d42; // 'BMPS' little-endian
export const STREAM_VERSION = 1;
export const OPENING_BYTES = 40;
export const FRAME_HEADER = 8;
export const enum FrameType {
  Raw = 1,
  Zero = 2,
  End = 3,
  Ack = 4,
  Nak = 5,
}
export const NAK_BAD_PAGE = 1;
export const NAK_BAD_FRAME = 2;

export function opening(token: Uint8Array): Buffer {
  const b = Buffer.alloc(OPENING_BYTES);
  b.writeUInt32LE(STREAM_MAGIC, 0);
  b.writeUInt8(STREAM_VERSION, 4);
  b.set(token, 8);
  return b;
}

export interface PageSink {
  /** A page arrived; `src` holds it at `offset` (valid only during the call). null = zero page. */
  page(index: number, src: Buffer | null, offset: number): boolean;
  /** An END frame: `count` frames since the last END. */
  end(count: number): void;
  /** The stream is unusable (bad opening, bad frame, out-of-range page). */
  fail(reason: string, nak: number): void;
  /**
   * Optional fast path: apply the whole page frames of `chunk` from `offset`
   * in one call. stats ← [next offset, pages applied, status (0 ok, 2 page
   * out of range), bad page index]. It stops at anything else (END, a
   * partial frame), which the decoder then handles one frame at a time.
   */
  applyRun?(chunk: Buffer, offset: number, stats: Float64Array): void;
}

/**
 * Incremental decoder for the receiver. Feed it socket chunks as they come;
 * it hands complete pages to the sink straight out of the chunk when they
 * are contiguous and assembles the rare page split across chunks in one
 * fixed scratch buffer: no allocation per page.
 */
export class PageStreamDecoder {
  private readonly scratch = Buffer.alloc(PAGE_SIZE);
  private readonly header = Buffer.alloc(Math.max(FRAME_HEADER, OPENING_BYTES));
  private headerFill = 0;
  private opened = false;
  private pageIndex = -1; // >= 0 while collecting a split RAW page
  private pageFill = 0;
  private sinceEnd = 0;
  private dead = false;
  private readonly runStats = new Float64Array(4);

  constructor(
    private readonly token: Uint8Array,
    private readonly sink: PageSink,
  ) {}

  push(chunk: Buffer): void {
    let off = 0;
    const len = chunk.length;
    while (off < len && !this.dead) {
      if (!this.opened) {
        const n = Math.min(OPENING_BYTES - this.headerFill, len - off);
        chunk.copy(this.header, this.headerFill, off, off + n);
        this.headerFill += n;
        off += n;
        if (this.headerFill < OPENING_BYTES) return;
        this.headerFill = 0;
        if (this.header.readUInt32LE(0) !== STREAM_MAGIC || this.header[4] !== STREAM_VERSION) return this.die('bad stream opening (not a baremig page stream, or another version)', NAK_BAD_FRAME);
        if (!this.header.subarray(8, 40).equals(Buffer.from(this.token))) return this.die('page stream token mismatch', NAK_BAD_FRAME);
        this.opened = true;
        continue;
      }
      if (this.pageIndex >= 0) {
        const n = Math.min(PAGE_SIZE - this.pageFill, len - off);
        chunk.copy(this.scratch, this.pageFill, off, off + n);
        this.pageFill += n;
        off += n;
        if (this.pageFill === PAGE_SIZE) {
          const idx = this.pageIndex;
          this.pageIndex = -1;
          if (!this.sink.page(idx, this.scratch, 0)) return this.die(`page ${idx} outside guest RAM`, NAK_BAD_PAGE);
        }
        continue;
      }
      // Fastest path: the sink applies a run of whole page frames in one call.
      if (this.headerFill === 0 && this.sink.applyRun && len - off >= FRAME_HEADER) {
        const st = this.runStats;
        this.sink.applyRun(chunk, off, st);
        this.sinceEnd += st[1]!;
        off = st[0]!;
        if (st[2] === 2) return this.die(`page ${st[3]} outside guest RAM`, NAK_BAD_PAGE);
        if (len - off < FRAME_HEADER) continue;
      }
      // Fast path: a whole header (and page) inside this chunk.
      let type: number;
      let arg: number;
      if (this.headerFill === 0 && len - off >= FRAME_HEADER) {
        type = chunk[off]!;
        arg = chunk.readUInt32LE(off + 4);
        off += FRAME_HEADER;
      } else {
        const n = Math.min(FRAME_HEADER - this.headerFill, len - off);
        chunk.copy(this.header, this.headerFill, off, off + n);
        this.headerFill += n;
        off += n;
        if (this.headerFill < FRAME_HEADER) return;
        this.headerFill = 0;
        type = this.header[0]!;
        arg = this.header.readUInt32LE(4);
      }
      switch (type) {
        case FrameType.Raw:
          this.sinceEnd++;
          if (len - off >= PAGE_SIZE) {
            if (!this.sink.page(arg, chunk, off)) return this.die(`page ${arg} outside guest RAM`, NAK_BAD_PAGE);
            off += PAGE_SIZE;
          } else {
            this.pageIndex = arg;
            this.pageFill = 0;
          }
          break;
        case FrameType.Zero:
          this.sinceEnd++;
          if (!this.sink.page(arg, null, 0)) return this.die(`page ${arg} outside guest RAM`, NAK_BAD_PAGE);
          break;
        case FrameType.End:
          if (arg !== this.sinceEnd) return this.die(`round ended with ${arg} frames announced, ${this.sinceEnd} received`, NAK_BAD_FRAME);
          this.sinceEnd = 0;
          this.sink.end(arg);
          break;
        default:
          return this.die(`unknown page stream frame type ${type}`, NAK_BAD_FRAME);
      }
    }
  }

  private die(reason: string, nak: number): void {
    this.dead = true;
    this.sink.fail(reason, nak);
  }
}

export function ackFrame(type: FrameType.Ack | FrameType.Nak, arg: number): Buffer {
  const b = Buffer.alloc(FRAME_HEADER);
  b[0] = type;
  b.writeUInt32LE(arg >>> 0, 4);
  return b;
}
