import { type Server, type Socket, createServer } from 'node:net';
import { FrameType, NAK_BAD_FRAME, PageStreamDecoder, ackFrame } from '../../protocol/pageStream.js';
import type { GuestMemory } from '../guestMemory.js';

/**
 * The destination agent's page stream listener. Only a connection that opens
 * with the token handed out by prepareIncoming may write guest RAM; anything
 * else is refused before a byte of RAM changes.
 */
export class PageReceiver {
  private server: Server | null = null;
  private slot: { token: Buffer; mem: GuestMemory } | null = null;
  private readonly sockets = new Set<Socket>();
  pagesReceived = 0;
  rejected = 0;

  constructor(private readonly host: string) {}

  async listen(port = 0): Promise<number> {
    const server = createServer((s) => this.accept(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.host, () => resolve());
    });
    const a = server.address();
    return typeof a === 'object' && a ? a.port : port;
  }

  open(token: Buffer, mem: GuestMemory): void {
    this.slot = { token, mem };
    this.pagesReceived = 0;
  }

  /** No more pages: drop every stream (the guest resumed or was abandoned). */
  closeSlot(): void {
    this.slot = null;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  private accept(s: Socket): void {
    const slot = this.slot;
    if (!slot) {
      this.rejected++;
      s.end(ackFrame(FrameType.Nak, NAK_BAD_FRAME));
      return;
    }
    this.sockets.add(s);
    s.setNoDelay(true);
    const mem = slot.mem;
    const pages = mem.pages;
    const dec = new PageStreamDecoder(slot.token, {
      page: (index, src, off) => {
        if (index >= pages || this.slot !== slot) return false;
        mem.storePage(index, src, off);
        this.pagesReceived++;
        return true;
      },
      applyRun: (chunk, off, stats) => {
        if (this.slot !== slot) {
          stats[0] = off;
          stats[1] = 0;
          stats[2] = 2;
          stats[3] = -1;
          return;
        }
        mem.applyFrames(chunk, off, stats);
        this.pagesReceived += stats[1]!;
      },
      end: (count) => {
        s.write(ackFrame(FrameType.Ack, count));
      },
      fail: (_reason, nak) => {
        this.rejected++;
        // The decoder ignores everything after a failure; end() lets the NAK reach the sender.
        s.end(ackFrame(FrameType.Nak, nak));
      },
    });
    s.on('data', (d: Buffer) => dec.push(d));
    s.on('error', () => s.destroy());
    s.on('close', () => this.sockets.delete(s));
  }

  async close(): Promise<void> {
    this.closeSlot();
    const srv = this.server;
    this.server = null;
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  }
}
