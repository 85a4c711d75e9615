/**
 * The service network's L2 switch: transparent bridging as IEEE 802.1D
 * describes it, minus spanning tree (the simulated network has no loops).
 *
 * - Learning: the source address of every frame maps to the port it came in
 *   on. A source seen on a new port moves there at once (a MAC move): this
 *   is how a migrated guest is found again, by its first frame — usually the
 *   gratuitous ARP it announces itself with — from the destination's port.
 * - Forwarding: a unicast destination in the table goes out of its port
 *   only (dropped when that is the port it came from); broadcast, multicast
 *   and unknown unicast are flooded to every other port.
 * - Aging: an entry not refreshed for `agingMs` (802.1D default 300 s) is
 *   forgotten; a full table stops learning and floods instead.
 * - Frames shorter than an Ethernet header, longer than a 9000-byte jumbo
 *   frame with a VLAN tag (9018 bytes without FCS), or with a group source
 *   address are dropped.
 *
 * The data path allocates nothing: addresses are numbers (mac.ts), ports are
 * small integers, counters are typed arrays.
 */
import { isGroupMac, macAt, macToString } from './mac.js';

export const MIN_FRAME = 14;
export const MAX_FRAME = 9018;
export const DEFAULT_AGING_MS = 300_000;
export const DEFAULT_MAX_ENTRIES = 8192;

/** Where the switch sends a port's frames (a UDP socket, a pcap handle, a test array). */
export interface PortSink {
  readonly name: string;
  deliver(frame: Uint8Array): void;
}

export interface SwitchOptions {
  agingMs?: number;
  maxEntries?: number;
  /** Milliseconds, monotonic. */
  now?: () => number;
  /** A learned address appeared on another port. */
  onMove?: (mac: string, from: string, to: string) => void;
}

export interface PortStats {
  name: string;
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  /** Frames from this port that were dropped (malformed, or addressed back to this port). */
  dropped: number;
}

export interface SwitchStats {
  ports: PortStats[];
  floods: number;
  moves: number;
  learned: number;
  aged: number;
  entries: number;
}

interface Entry {
  port: number;
  seenMs: number;
}

const MAX_PORTS = 256;

export class L2Switch {
  private readonly ports: Array<PortSink | null> = [];
  private readonly table = new Map<number, Entry>();
  private readonly agingMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly onMove?: SwitchOptions['onMove'];
  // Per port: rxFrames, rxBytes, txFrames, txBytes, dropped.
  private readonly counters = new Float64Array(MAX_PORTS * 5);
  private floods = 0;
  private moves = 0;
  private learned = 0;
  private aged = 0;

  constructor(o: SwitchOptions = {}) {
    this.agingMs = o.agingMs ?? DEFAULT_AGING_MS;
    this.maxEntries = o.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.now = o.now ?? (() => performance.now());
    this.onMove = o.onMove;
  }

  addPort(sink: PortSink): number {
    let id = this.ports.indexOf(null);
    if (id < 0) {
      if (this.ports.length >= MAX_PORTS) throw new RangeError(`a switch has at most ${MAX_PORTS} ports`);
      id = this.ports.length;
      this.ports.push(sink);
    } else this.ports[id] = sink;
    this.counters.fill(0, id * 5, id * 5 + 5);
    return id;
  }

  /** Unplug a port: its addresses are forgotten. */
  removePort(id: number): void {
    if (!this.ports[id]) return;
    this.ports[id] = null;
    for (const [mac, e] of this.table) if (e.port === id) this.table.delete(mac);
  }

  portName(id: number): string | undefined {
    return this.ports[id]?.name;
  }

  /** A frame arrived on port `from`. */
  receive(from: number, frame: Uint8Array): void {
    const c = this.counters;
    const base = from * 5;
    c[base] = c[base]! + 1;
    c[base + 1] = c[base + 1]! + frame.length;
    if (frame.length < MIN_FRAME || frame.length > MAX_FRAME || isGroupMac(frame, 6) || !this.ports[from]) {
      c[base + 4] = c[base + 4]! + 1;
      return;
    }
    const now = this.now();
    this.learn(macAt(frame, 6), from, now);
    if (!isGroupMac(frame, 0)) {
      const e = this.table.get(macAt(frame, 0));
      if (e !== undefined) {
        if (now - e.seenMs > this.agingMs) {
          this.table.delete(macAt(frame, 0));
          this.aged++;
        } else {
          if (e.port === from) c[base + 4] = c[base + 4]! + 1;
          else this.send(e.port, frame);
          return;
        }
      }
    }
    this.floods++;
    for (let p = 0; p < this.ports.length; p++) if (p !== from && this.ports[p]) this.send(p, frame);
  }

  private learn(src: number, port: number, now: number): void {
    const e = this.table.get(src);
    if (e !== undefined) {
      if (e.port !== port) {
        const old = e.port;
        e.port = port;
        this.moves++;
        this.onMove?.(macToString(src), this.ports[old]?.name ?? `#${old}`, this.ports[port]!.name);
      }
      e.seenMs = now;
      return;
    }
    if (this.table.size >= this.maxEntries) return;
    this.table.set(src, { port, seenMs: now });
    this.learned++;
  }

  private send(port: number, frame: Uint8Array): void {
    const c = this.counters;
    c[port * 5 + 2] = c[port * 5 + 2]! + 1;
    c[port * 5 + 3] = c[port * 5 + 3]! + frame.length;
    this.ports[port]!.deliver(frame);
  }

  /** Forget entries older than the aging time (also done lazily on lookup). */
  sweep(): number {
    const now = this.now();
    let n = 0;
    for (const [mac, e] of this.table) {
      if (now - e.seenMs > this.agingMs) {
        this.table.delete(mac);
        n++;
      }
    }
    this.aged += n;
    return n;
  }

  /** The port an address is learned on (and not aged), by name. */
  lookup(mac: ArrayLike<number>): string | undefined {
    const e = this.table.get(macAt(Uint8Array.from(mac), 0));
    if (!e || this.now() - e.seenMs > this.agingMs) return undefined;
    return this.ports[e.port]?.name;
  }

  entries(): Array<{ mac: string; port: string; ageMs: number }> {
    const now = this.now();
    return [...this.table].map(([mac, e]) => ({ mac: macToString(mac), port: this.ports[e.port]?.name ?? `#${e.port}`, ageMs: now - e.seenMs }));
  }

  stats(): SwitchStats {
    const c = this.counters;
    const ports: PortStats[] = [];
    this.ports.forEach((p, i) => {
      if (p) ports.push({ name: p.name, rxFrames: c[i * 5]!, rxBytes: c[i * 5 + 1]!, txFrames: c[i * 5 + 2]!, txBytes: c[i * 5 + 3]!, dropped: c[i * 5 + 4]! });
    });
    return { ports, floods: this.floods, moves: this.moves, learned: this.learned, aged: this.aged, entries: this.table.size };
  }
}
