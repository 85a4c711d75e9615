/**
 * A switch port on a real Linux interface: frames captured on it enter the
 * service network, frames the switch sends there are injected onto it. With
 * one end of a veth pair as that interface and the other end in a network
 * namespace, real hosts (ping, iperf, the kernel's ARP) share a segment
 * with the simulated guests.
 *
 * Capture and inject use libpcap through node-pcap (the optional dependency
 * `pcap`, built against libpcap-dev at install). Immediate mode: a frame is
 * handed over as soon as it arrives, not when a capture block fills. No
 * capture filter: a packet socket does not see the frames it sent itself,
 * and the host end of the veth carries no addresses of its own, so what is
 * captured is exactly what the far end sent. (With a BPF direction filter
 * libpcap 1.10 was seen to miss the first frame of a burst.)
 *
 * What the far end's NIC would do on a real wire, the bridge does for it:
 * - frames shorter than the Ethernet minimum are padded to 60 bytes (a veth
 *   does not pad, and an RTL8169 drops such a frame as a runt);
 * - UDP and TCP checksums over IPv4 are completed. A veth offloads them
 *   (CHECKSUM_PARTIAL): a captured frame may carry only the pseudo-header
 *   sum, which a NIC with transmit checksum offload would have finished.
 *   libpcap does not say which frames are partial, so every such checksum
 *   is recomputed (a veth corrupts nothing else). ICMP has no offload.
 */
import { createRequire } from 'node:module';
import { ETHERTYPE_IPV4, ETH_HLEN, IPPROTO_UDP, foldChecksum, rd16, sum16, wr16 } from '../guest/net/wire.js';
import type { L2Switch } from './switch.js';

const ETH_ZLEN = 60;
const IPPROTO_TCP = 6;

/** Completes the UDP or TCP checksum of an IPv4 frame in place (transmit checksum offload). */
export function completeL4Checksum(f: Uint8Array): void {
  if (f.length < ETH_HLEN + 20 || rd16(f, 12) !== ETHERTYPE_IPV4 || f[ETH_HLEN]! >> 4 !== 4) return;
  const ihl = (f[ETH_HLEN]! & 0x0f) * 4;
  const total = rd16(f, ETH_HLEN + 2);
  const proto = f[ETH_HLEN + 9]!;
  if ((rd16(f, ETH_HLEN + 6) & 0x3fff) !== 0 || ETH_HLEN + total > f.length || total < ihl) return; // fragments: no L4 header here
  const l4 = ETH_HLEN + ihl;
  const len = total - ihl;
  let field: number;
  if (proto === IPPROTO_UDP && len >= 8) {
    if (rd16(f, l4 + 6) === 0) return; // no checksum sent
    field = l4 + 6;
  } else if (proto === IPPROTO_TCP && len >= 20) field = l4 + 16;
  else return;
  wr16(f, field, 0);
  const pseudo = rd16(f, ETH_HLEN + 12) + rd16(f, ETH_HLEN + 14) + rd16(f, ETH_HLEN + 16) + rd16(f, ETH_HLEN + 18) + proto + len;
  let c = foldChecksum(sum16(f, l4, len, pseudo));
  if (c === 0 && proto === IPPROTO_UDP) c = 0xffff;
  wr16(f, field, c);
}
const SNAP_BYTES = 9018 + 64;
const CAPTURE_BUFFER_BYTES = 8 * 1024 * 1024;

interface PcapPacket {
  buf: Buffer;
  header: Buffer;
}
interface PcapSession {
  on(ev: 'packet', cb: (p: PcapPacket) => void): void;
  inject(frame: Uint8Array): void;
  close(): void;
  stats(): { ps_recv: number; ps_drop: number; ps_ifdrop: number };
}
interface PcapModule {
  createSession(iface: string, o: { filter?: string; buffer_size?: number; snap_length?: number; buffer_timeout?: number; promiscuous?: boolean }): PcapSession;
  warningHandler: (msg: string) => void;
  lib_version: string;
}

let loaded: { mod: PcapModule } | { error: string } | null = null;

function loadPcap(): { mod: PcapModule } | { error: string } {
  if (loaded) return loaded;
  try {
    const mod = createRequire(import.meta.url)('pcap') as PcapModule;
    // node-pcap warns on stdout about interfaces without an IPv4 address: ours has none on purpose.
    mod.warningHandler = () => {};
    loaded = { mod };
  } catch (e) {
    loaded = { error: `the optional package 'pcap' is not usable (${(e as Error).message.split('\n')[0]}): install libpcap-dev, then npm install` };
  }
  return loaded;
}

/** Whether host bridging can work here; the reason when not. */
export function bridgeSupport(): { ok: true; libpcap: string } | { ok: false; reason: string } {
  const l = loadPcap();
  if ('error' in l) return { ok: false, reason: l.error };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'capturing and injecting frames needs root (CAP_NET_RAW)' };
  return { ok: true, libpcap: l.mod.lib_version };
}

export class HostBridge {
  captured = 0;
  injected = 0;
  injectErrors = 0;
  private id = -1;
  private closed = false;

  private constructor(
    readonly iface: string,
    private readonly session: PcapSession,
  ) {}

  /** Plugs `iface` into the switch as port `name`. */
  static open(sw: L2Switch, iface: string, name = `host:${iface}`): HostBridge {
    const l = loadPcap();
    if ('error' in l) throw new Error(l.error);
    let session: PcapSession;
    try {
      session = l.mod.createSession(iface, { buffer_timeout: 0, snap_length: SNAP_BYTES, buffer_size: CAPTURE_BUFFER_BYTES, promiscuous: true });
    } catch (e) {
      throw new Error(`cannot capture on ${iface}: ${(e as Error).message}`);
    }
    const b = new HostBridge(iface, session);
    b.id = sw.addPort({
      name,
      deliver: (frame) => {
        if (b.closed) return;
        try {
          session.inject(frame);
          b.injected++;
        } catch {
          b.injectErrors++;
        }
      },
    });
    session.on('packet', (p) => {
      // The capture buffer is reused for the next frame: copy out (padded to the Ethernet minimum).
      const len = p.header.readUInt32LE(8);
      const f = Buffer.alloc(Math.max(len, ETH_ZLEN));
      p.buf.copy(f, 0, 0, len);
      completeL4Checksum(f);
      b.captured++;
      sw.receive(b.id, f);
    });
    return b;
  }

  portId(): number {
    return this.id;
  }

  /** Kernel-side drops of the capture (buffer overruns). */
  kernelDrops(): number {
    try {
      return this.session.stats().ps_drop;
    } catch {
      return 0;
    }
  }

  close(sw: L2Switch): void {
    if (this.closed) return;
    this.closed = true;
    sw.removePort(this.id);
    this.session.close();
  }
}
