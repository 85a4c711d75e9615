import { type Server, type Socket, createServer } from 'node:net';
import { FrameType, NAK_BAD_FRAME, ackFrame } from '../../protocol/pageStream.js';
import { socketFd } from '../../protocol/socketFd.js';
import type { GuestMemory } from '../guestMemory.js';
import { type StreamHandle, StreamStatus, simAccel } from '../native.js';

interface Incoming {
  socket: Socket;
  handle: StreamHandle;
  live: Float64Array;
}

/**
 * The destination agent's page stream listener. Only a connection that opens
 * with the token handed out by prepareIncoming may write guest RAM; anything
 * else is refused before a byte of RAM changes.
 *
 * Connections are accepted paused: JavaScript never reads them. The native
 * receiver (native/pageStreamIo.c) reads each on a thread of its own, checks
 * the opening, stores pages and acknowledges rounds.
 */
export class PageReceiver {
  private server: Server | null = null;
  private slot: { token: Buffer; mem: GuestMemory } | null = null;
  private readonly streams = new Set<Incoming>();
  private readonly refused = new Set<Socket>();
  private received = 0;
  rejected = 0;

  constructor(private readonly host: string) {}

  /** Pages stored since the slot opened (closed streams and running ones). */
  get pagesReceived(): number {
    let n = this.received;
    for (const s of this.streams) n += s.live[0]!;
    return n;
  }

  async listen(port = 0): Promise<number> {
    const server = createServer({ pauseOnConnect: true }, (s) => this.accept(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.host, () => resolve());
    });
    const a = server.address();
    return typeof a === 'object' && a ? a.port : port;
  }

  open(token: Buffer, mem: GuestMemory): void {
    this.closeSlot();
    this.slot = { token, mem };
    this.received = 0;
  }

  /**
   * No more pages: stop every stream (the guest resumed or was abandoned).
   * When this returns no stream writes guest RAM any more, so the caller may
   * scrub or run it.
   */
  closeSlot(): void {
    this.slot = null;
    const accel = this.streams.size ? simAccel() : null;
    for (const s of this.streams) {
      accel!.cancelStream(s.handle);
      s.socket.destroy();
    }
    this.streams.clear();
  }

  private accept(s: Socket): void {
    s.on('error', () => s.destroy());
    const slot = this.slot;
    if (!slot) {
      this.rejected++;
      // Read and discard what the sender already wrote, so that closing is a FIN after the NAK, not a reset that eats it.
      this.refused.add(s);
      s.on('close', () => this.refused.delete(s));
      s.on('data', () => undefined);
      s.end(ackFrame(FrameType.Nak, NAK_BAD_FRAME));
      setTimeout(() => s.destroy(), 1000).unref();
      return;
    }
    s.setNoDelay(true);
    const live = new Float64Array(4);
    let fd: number;
    try {
      fd = socketFd(s);
    } catch {
      s.destroy();
      return;
    }
    const handle = slot.mem.receivePages(fd, slot.token, live, (status) => {
      if (status === StreamStatus.BadPage || status === StreamStatus.BadFrame) this.rejected++;
      if (this.streams.delete(inc) && this.slot === slot) this.received += live[0]!;
      s.destroy();
    });
    const inc: Incoming = { socket: s, handle, live };
    this.streams.add(inc);
  }

  async close(): Promise<void> {
    this.closeSlot();
    for (const s of this.refused) s.destroy();
    const srv = this.server;
    this.server = null;
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  }
}
