import { type Socket, connect } from 'node:net';
import { BaremigError } from '../errors.js';
import { type GuestMemory, PAGE_SIZE } from '../sim/guestMemory.js';
import { FRAME_HEADER, FrameType, opening } from './pageStream.js';
import type { TokenBucket } from './tokenBucket.js';

const PAGES_PER_BATCH = 256;
const BATCH_BYTES = PAGES_PER_BATCH * (FRAME_HEADER + PAGE_SIZE);
/** Bytes queued in the socket beyond which the sender waits for 'drain' (the pool holds this much). */
const MAX_QUEUED_BYTES = 4 * BATCH_BYTES;

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
  /** The round in flight, for progress reports while it runs. */
  readonly live = { active: false, pages: 0, wireBytes: 0, startedMs: 0 };

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

  /** Batch buffers are reused once the kernel has their bytes: no allocation churn on the data path. */
  private readonly pool: Buffer[] = [];

  private takeBatch(): Buffer {
    return this.pool.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES);
  }

  private async write(buf: Buffer, owner?: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    const done = owner ? () => this.pool.length < 8 && this.pool.push(owner) : undefined;
    this.socket.write(buf, done);
    // Backpressure with a few batches of slack: waiting for 'drain' after
    // every batch left the socket idle while the next one was packed (the
    // stream ran at a third of loopback speed); this keeps the kernel fed.
    if (this.socket.writableLength > MAX_QUEUED_BYTES) {
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
    const stats = new Float64Array(4);
    let pages = 0;
    let zeroPages = 0;
    let wire = 0;
    let next = 0;
    const live = this.live;
    live.active = true;
    live.pages = 0;
    live.wireBytes = 0;
    live.startedMs = t0;
    const send = async (buf: Buffer, owner?: Buffer) => {
      if (bucket) await bucket.take(buf.length);
      wire += buf.length;
      live.pages = pages;
      live.wireBytes = wire;
      await this.write(buf, owner);
    };
    while (next < mem.pages) {
      // The socket keeps a batch until the kernel has it; then it returns to the pool.
      const batch = this.takeBatch();
      mem.packPages(bitmap, next, batch, 0, stats);
      next = stats[0]!;
      pages += stats[2]!;
      zeroPages += stats[3]!;
      if (stats[1]! > 0) await send(batch.subarray(0, stats[1]!), batch);
      else this.pool.push(batch);
    }
    const end = Buffer.alloc(FRAME_HEADER);
    end[0] = FrameType.End;
    end.writeUInt32LE(pages, 4);
    const acked = new Promise<number>((resolve, reject) => this.acks.push({ resolve, reject }));
    await send(end);
    const count = await acked.finally(() => (live.active = false));
    if (count !== pages) throw new BaremigError('STREAM', `destination ${this.peer} acknowledged ${count} pages, ${pages} were sent`);
    return { pages, zeroPages, wireBytes: wire, ms: performance.now() - t0 };
  }

  close(): void {
    this.socket.removeAllListeners('close');
    this.socket.end();
  }
}
