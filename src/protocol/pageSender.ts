import { type Socket, connect } from 'node:net';
import { BaremigError } from '../errors.js';
import { type GuestMemory, PAGE_SIZE, ZERO_PAGE } from '../sim/guestMemory.js';
import { FRAME_HEADER, FrameType, opening } from './pageStream.js';
import type { TokenBucket } from './tokenBucket.js';

const PAGES_PER_BATCH = 64;
const BATCH_BYTES = PAGES_PER_BATCH * (FRAME_HEADER + PAGE_SIZE);

export interface RoundStats {
  pages: number;
  zeroPages: number;
  wireBytes: number;
  ms: number;
}

/**
 * The source agent's end of a page stream to one destination. Pages are
 * copied into 256 KiB batches (the socket keeps a batch until the kernel has
 * it, and the guest keeps running during pre-copy); a full socket buffer
 * pauses the loop until 'drain'; an optional token bucket caps the rate.
 */
export class PageSender {
  private acks: Array<{ resolve: (n: number) => void; reject: (e: Error) => void }> = [];
  private ackBuf: Buffer = Buffer.alloc(0);
  private failure: BaremigError | null = null;
  private drainWaiter: { resolve: () => void; reject: (e: Error) => void } | null = null;

  private constructor(
    private readonly socket: Socket,
    readonly peer: string,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onAck(d));
    socket.on('drain', () => {
      const w = this.drainWaiter;
      this.drainWaiter = null;
      w?.resolve();
    });
    const onGone = (why: string) => this.fail(new BaremigError('STREAM', `page stream to ${peer} ${why}`));
    socket.on('error', (e) => onGone(`failed: ${e.message}`));
    socket.on('close', () => onGone('closed by the destination'));
  }

  static connect(host: string, port: number, token: Uint8Array, timeoutMs = 5000): Promise<PageSender> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port });
      const t = setTimeout(() => {
        s.destroy();
        reject(new BaremigError('STREAM', `page stream to ${host}:${port}: connect timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('error', (e) => {
        clearTimeout(t);
        reject(new BaremigError('STREAM', `page stream to ${host}:${port}: ${e.message}`));
      });
      s.once('connect', () => {
        clearTimeout(t);
        s.removeAllListeners('error');
        const sender = new PageSender(s, `${host}:${port}`);
        s.write(opening(token));
        resolve(sender);
      });
    });
  }

  get alive(): boolean {
    return this.failure === null && !this.socket.destroyed;
  }

  private fail(e: BaremigError): void {
    if (this.failure) return;
    this.failure = e;
    for (const a of this.acks) a.reject(e);
    this.acks = [];
    this.drainWaiter?.reject(e);
    this.drainWaiter = null;
    this.socket.destroy();
  }

  private onAck(d: Buffer): void {
    this.ackBuf = this.ackBuf.length ? Buffer.concat([this.ackBuf, d]) : d;
    while (this.ackBuf.length >= FRAME_HEADER) {
      const type = this.ackBuf[0];
      const arg = this.ackBuf.readUInt32LE(4);
      this.ackBuf = this.ackBuf.subarray(FRAME_HEADER);
      if (type === FrameType.Ack) this.acks.shift()?.resolve(arg);
      else if (type === FrameType.Nak) return this.fail(new BaremigError('STREAM', `destination ${this.peer} refused the page stream (code ${arg})`));
      else return this.fail(new BaremigError('PROTOCOL', `unexpected frame type ${type} from destination ${this.peer}`));
    }
  }

  private async write(buf: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.socket.write(buf)) {
      await new Promise<void>((resolve, reject) => {
        this.drainWaiter = { resolve, reject };
      });
    }
  }

  /**
   * Sends one round: every page (`bitmap` null) or the pages marked in
   * `bitmap`, then END, and waits until the destination has applied them.
   */
  async sendRound(mem: GuestMemory, bitmap: Uint8Array | null, bucket?: TokenBucket): Promise<RoundStats> {
    const t0 = performance.now();
    const src = mem.bytes;
    let batch = Buffer.allocUnsafe(BATCH_BYTES);
    let fill = 0;
    let pages = 0;
    let zeroPages = 0;
    let wire = 0;
    const flush = async () => {
      if (fill === 0) return;
      if (bucket) await bucket.take(fill);
      const out = batch.subarray(0, fill);
      wire += fill;
      batch = Buffer.allocUnsafe(BATCH_BYTES);
      fill = 0;
      await this.write(out);
    };
    const n = mem.pages;
    for (let p = 0; p < n; p++) {
      if (bitmap !== null && bitmap[p] === 0) continue;
      if (fill + FRAME_HEADER + PAGE_SIZE > BATCH_BYTES) await flush();
      const off = p * PAGE_SIZE;
      const zero = src.compare(ZERO_PAGE, 0, PAGE_SIZE, off, off + PAGE_SIZE) === 0;
      batch[fill] = zero ? FrameType.Zero : FrameType.Raw;
      batch[fill + 1] = 0;
      batch.writeUInt16LE(0, fill + 2);
      batch.writeUInt32LE(p, fill + 4);
      fill += FRAME_HEADER;
      if (zero) zeroPages++;
      else {
        src.copy(batch, fill, off, off + PAGE_SIZE);
        fill += PAGE_SIZE;
      }
      pages++;
    }
    if (fill + FRAME_HEADER > BATCH_BYTES) await flush();
    batch[fill] = FrameType.End;
    batch[fill + 1] = 0;
    batch.writeUInt16LE(0, fill + 2);
    batch.writeUInt32LE(pages, fill + 4);
    fill += FRAME_HEADER;
    const acked = new Promise<number>((resolve, reject) => this.acks.push({ resolve, reject }));
    await flush();
    const count = await acked;
    if (count !== pages) throw new BaremigError('STREAM', `destination ${this.peer} acknowledged ${count} pages, ${pages} were sent`);
    return { pages, zeroPages, wireBytes: wire, ms: performance.now() - t0 };
  }

  close(): void {
    this.socket.removeAllListeners('close');
    this.socket.end();
  }
}
