/**
 * The service network's cables: one UDP socket per switch port on the
 * switch's side, one per NIC on the node's side, on loopback (or any
 * address the nodes share). A datagram is exactly one Ethernet frame
 * (destination MAC first, no FCS, up to 9018 bytes): no header, no
 * encoding, so the data path costs one send and one receive. UDP behaves
 * like Ethernet where it matters — frames may be lost (a full socket
 * buffer is a congested link), nothing is retransmitted — and loopback
 * does not reorder.
 *
 * A zero-length datagram is the link pulse: the node's end sends one when
 * it starts and every second, so the switch port learns (and re-learns,
 * after either end restarted) where its cable leads.
 */
import dgram from 'node:dgram';
import type { L2Switch } from './switch.js';

/** Socket buffers: room for ~2 ms of 1 Gb/s in each direction. */
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;
const LINK_PULSE_MS = 1000;
const EMPTY = new Uint8Array(0);

export interface UdpEndpoint {
  host: string;
  port: number;
}

function createSocket(): dgram.Socket {
  return dgram.createSocket({ type: 'udp4', recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES });
}

function bind(s: dgram.Socket, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    s.once('error', onError);
    s.bind(port, host, () => {
      s.off('error', onError);
      resolve();
    });
  });
}

/** A switch port whose cable is a UDP socket. */
export class UdpSwitchPort {
  private peerHost: string | null = null;
  private peerPort = 0;
  private id = -1;
  /** Send errors (peer gone): the frame is lost, as on a cable with nobody at the other end. */
  sendErrors = 0;

  private constructor(
    readonly name: string,
    private readonly sock: dgram.Socket,
    readonly endpoint: UdpEndpoint,
  ) {}

  static async open(sw: L2Switch, name: string, host = '127.0.0.1', port = 0): Promise<UdpSwitchPort> {
    const sock = createSocket();
    await bind(sock, host, port);
    const p = new UdpSwitchPort(name, sock, { host, port: sock.address().port });
    const onSendError = (e: Error | null) => {
      if (e) p.sendErrors++;
    };
    p.id = sw.addPort({
      name,
      deliver: (frame) => {
        if (p.peerHost !== null) sock.send(frame, p.peerPort, p.peerHost, onSendError);
      },
    });
    sock.on('message', (msg, rinfo) => {
      if (rinfo.port !== p.peerPort || rinfo.address !== p.peerHost) {
        p.peerHost = rinfo.address;
        p.peerPort = rinfo.port;
      }
      if (msg.length > 0) sw.receive(p.id, msg);
    });
    sock.on('error', () => {});
    return p;
  }

  /** The node end, once it has sent anything. */
  peer(): UdpEndpoint | null {
    return this.peerHost === null ? null : { host: this.peerHost, port: this.peerPort };
  }

  portId(): number {
    return this.id;
  }

  close(sw: L2Switch): void {
    sw.removePort(this.id);
    this.sock.close();
  }
}

/** What a NIC sees of its cable: frames out, frames in. */
export interface FramePort {
  send(frame: Uint8Array): void;
  onFrame(cb: (frame: Uint8Array) => void): void;
  close(): void;
}

/** The node's end of a UDP cable to a switch port. */
export class UdpNicPort implements FramePort {
  private cb: (frame: Uint8Array) => void = () => {};
  private readonly pulse: NodeJS.Timeout;
  private closed = false;
  txFrames = 0;
  rxFrames = 0;
  sendErrors = 0;
  private readonly onSent = (e: Error | null) => {
    if (e) this.sendErrors++;
  };

  private constructor(private readonly sock: dgram.Socket) {
    sock.on('message', (msg) => {
      if (msg.length === 0) return;
      this.rxFrames++;
      this.cb(msg);
    });
    // ECONNREFUSED while the switch is away: frames are lost, the cable stays.
    sock.on('error', () => {});
    this.sock.send(EMPTY, this.onSent);
    this.pulse = setInterval(() => this.sock.send(EMPTY, this.onSent), LINK_PULSE_MS);
    this.pulse.unref();
  }

  static async connect(to: UdpEndpoint): Promise<UdpNicPort> {
    const sock = createSocket();
    await bind(sock, to.host === '127.0.0.1' || to.host === 'localhost' ? '127.0.0.1' : '0.0.0.0', 0);
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.connect(to.port, to.host, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    return new UdpNicPort(sock);
  }

  send(frame: Uint8Array): void {
    if (this.closed) return;
    this.txFrames++;
    this.sock.send(frame, this.onSent);
  }

  onFrame(cb: (frame: Uint8Array) => void): void {
    this.cb = cb;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pulse);
    this.sock.close();
  }
}
