import { type Socket, connect } from 'node:net';
import { BaremigError } from '../errors.js';
import type { GuestMemory } from '../sim/guestMemory.js';
import { type StreamHandle, StreamStatus, simAccel } from '../sim/native.js';
import { FRAME_HEADER, FrameType, opening } from './pageStream.js';
import { socketFd } from './socketFd.js';

export interface RoundStats {
  pages: number;
  zeroPages: number;
  wireBytes: number;
  ms: number;
}

/**
 * The source agent's end of a page stream to one destination. A round runs
 * natively on a thread of its own (native/pageStreamIo.c: scan, zero-page
 * detection, hashing, pacing to the optional cap, sendmsg straight from guest
 * RAM with poll() for backpressure); this side opens the stream, reads the
 * destination's acknowledgements and reports progress.
 */
export class PageSender {
  private acks: Array<{ resolve: (n: number) => void; reject: (e: Error) => void }> = [];
  private ackBuf: Buffer = Buffer.alloc(0);
  private failure: BaremigError | null = null;
  private running: StreamHandle | null = null;
  private readonly liveStats = new Float64Array(4);
  /** The round in flight, for progress reports while it runs. */
  readonly live = {
    active: false,
    startedMs: 0,
    stats: this.liveStats,
    get pages(): number {
      return this.stats[0]!;
    },
    get wireBytes(): number {
      return this.stats[2]!;
    },
  };

  private constructor(
    private readonly socket: Socket,
    readonly peer: string,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onAck(d));
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
      const onError = (e: Error) => {
        clearTimeout(t);
        reject(new BaremigError('STREAM', `page stream to ${host}:${port}: ${e.message}`));
      };
      s.once('error', onError);
      s.once('connect', () => {
        // The opening must be on the wire before the native thread writes pages on the same socket.
        s.write(opening(token), (e) => {
          clearTimeout(t);
          s.removeListener('error', onError);
          if (e) return reject(new BaremigError('STREAM', `page stream to ${host}:${port}: ${e.message}`));
          resolve(new PageSender(s, `${host}:${port}`));
        });
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
    if (this.running) simAccel().cancelStream(this.running);
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

  /**
   * Sends one round: every page (`bitmap` null) or the pages marked in
   * `bitmap`, then END, and waits until the destination has applied them.
   * `rate` caps the stream in bytes/s (0: no cap).
   */
  async sendRound(mem: GuestMemory, bitmap: Uint8Array | null, rate = 0): Promise<RoundStats> {
    if (this.failure) throw this.failure;
    if (this.running) throw new BaremigError('STATE', `a round to ${this.peer} is already being sent`);
    const t0 = performance.now();
    const live = this.live;
    this.liveStats.fill(0);
    live.active = true;
    live.startedMs = t0;
    const acked = new Promise<number>((resolve, reject) => this.acks.push({ resolve, reject }));
    acked.catch(() => undefined); // observed below; a failure while sending must not surface as unhandled
    try {
      const stats = this.liveStats;
      await new Promise<void>((resolve, reject) => {
        this.running = mem.sendPages(socketFd(this.socket), bitmap, rate, stats, (status, _detail, reason) => {
          this.running = null;
          if (status === StreamStatus.Ok) return resolve();
          reject(this.failure ?? new BaremigError('STREAM', `page stream to ${this.peer}: ${reason}`));
        });
      });
      const pages = stats[0]!;
      const count = await acked;
      if (count !== pages) throw new BaremigError('STREAM', `destination ${this.peer} acknowledged ${count} pages, ${pages} were sent`);
      return { pages, zeroPages: stats[1]!, wireBytes: stats[2]!, ms: performance.now() - t0 };
    } catch (e) {
      this.fail(e instanceof BaremigError ? e : new BaremigError('STREAM', `page stream to ${this.peer}: ${(e as Error).message}`));
      throw e;
    } finally {
      live.active = false;
    }
  }

  close(): void {
    if (this.running) simAccel().cancelStream(this.running);
    this.socket.removeAllListeners('close');
    this.socket.end();
  }
}
