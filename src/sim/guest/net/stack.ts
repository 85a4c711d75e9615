/**
 * The guest's network stack and applications: the 'netApp' module.
 *
 * Ethernet, ARP (a small cache; replies to requests for our address;
 * gratuitous ARP announcements), IPv4 (checked header checksum, fragments
 * dropped), ICMP echo (answers ping; a pinger), UDP (checksummed), and three
 * applications: an iperf2-format UDP sender at a configured rate (so a real
 * `iperf -s -u` counts its stream, see iperf2.ts), a UDP sink that counts
 * datagrams, sequence gaps, duplicates and reordering and answers an iperf2
 * FIN with a server report, and a pinger.
 *
 * DESIGN rule 1: the code is stateless; every address, counter, sequence
 * number, timer and cache entry is in the module's region of guest RAM
 * (layout below), so the stack continues on a migration's destination
 * exactly where it stopped — the sender's next sequence number included.
 *
 * Announcements (gratuitous ARP, `announce.count` frames `announce.
 * intervalMs` apart) are made at boot, whenever the carrier comes up, when
 * someone rings the announce doorbell in RAM (ANN_REQ: a hypervisor or a
 * test may write it), and when the stack notices it was not run for longer
 * than `pauseDetectMs` — the guest's view of having been paused, e.g. by a
 * live migration. The first frame from the new port teaches the switch
 * where the guest is now; peers' ARP caches keep the same MAC.
 */
import type { GuestContext, GuestModule } from '../context.js';
import { MODULE_IDS } from '../layout.js';
import {
  FIN_INTERVAL_NS,
  FIN_TRIES,
  HEADER_SEQNO64B,
  HEADER_VERSION1,
  IPERF_DEFAULT_LEN,
  IPERF_MIN_PAYLOAD,
  IPERF_PORT,
  SERVER_REPORT_LEN,
  parseDatagram,
  parseServerReport,
  writeDatagram,
  writeServerReport,
} from './iperf2.js';
import { type NicApi, moduleBase } from './nic.js';
import {
  ARP_REPLY,
  ARP_REQUEST,
  BROADCAST_MAC,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  IPPROTO_ICMP,
  IPPROTO_UDP,
  buildArp,
  buildIcmpEcho,
  buildUdp,
  gratuitousArp,
  macEquals,
  parseArp,
  parseIcmp,
  parseIp,
  parseIpv4,
  parseUdp,
  rd16,
} from './wire.js';

export interface NetAppConfig {
  /** The guest's IPv4 address. */
  ip: string;
  prefixLen?: number;
  /** Housekeeping period (carrier, announcements, pause detection); default 5 ms. */
  tickMs?: number;
  /** A step later than this after the previous one counts as a pause; default 10 ms. */
  pauseDetectMs?: number;
  announce?: { count?: number; intervalMs?: number };
  /** iperf2 UDP client: `rateBps` payload bits per second of `length`-byte datagrams to dst:port. */
  iperf?: { dst: string; port?: number; srcPort?: number; length?: number; rateBps: number; durationMs?: number; startDelayMs?: number };
  /** UDP sink (also an iperf2 UDP server: answers a FIN with a report). */
  sink?: { port?: number };
  ping?: { dst: string; intervalMs?: number; count?: number; size?: number };
}

// ---------------------------------------------------------------- region layout

const MAGIC = 0x3054_454e; // "NET0"
export const NET_REGION_BYTES = 16384;
/** Frames that found the TX ring full wait here (a small qdisc): replies are not dropped by a busy stream. */
const TXQ_SLOTS = 8;
const TXQ_SLOT = 1536;
const L = {
  MAGIC: 0,
  NIC_BASE: 4,
  MAC: 8,
  IP: 16,
  MASK: 20,
  TICK_NS: 24,
  PAUSE_NS: 28,
  LAST_STEP: 32,
  ANN_LEFT: 40,
  ANN_INTERVAL_NS: 44,
  ANN_NEXT: 48,
  ANN_REQ: 56,
  LINK: 60,
  IP_ID: 64,
  ANN_COUNT: 68,
  EPOCH_MS: 72,
  ARP_REQ_NEXT: 80,
  ARP_REQ_IP: 88,
  COUNTERS: 96,
  ARP_CACHE: 192,
  IPERF: 448,
  SINK: 576,
  SINK_BITMAP: 704,
  PING: 1728,
  PING_BITMAP: 1824,
  TXQ_HEAD: 1952,
  TXQ_COUNT: 1956,
  TXQ_DROPS: 1960,
  TXQ: 4096,
} as const;

export const COUNTER_NAMES = [
  'rxFrames',
  'rxNotMine',
  'rxMalformed',
  'arpRx',
  'arpRepliesTx',
  'arpRequestsTx',
  'garpTx',
  'icmpEchoRx',
  'icmpEchoRepliesTx',
  'udpRx',
  'udpNoPort',
  'txFrames',
  'txRingFull',
  'pausesDetected',
  'linkUps',
  'unresolved',
  'rxFragments',
  'rxOtherProto',
] as const;
export type NetCounter = (typeof COUNTER_NAMES)[number];
const C = Object.fromEntries(COUNTER_NAMES.map((n, i) => [n, L.COUNTERS + 4 * i])) as Record<NetCounter, number>;

const ARP_ENTRIES = 16;
const ARP_ENTRY = 16; // ip u32, mac[6], valid u8, pad, seen (guest s) u32
const ARP_RETRY_NS = 100_000_000;

// iperf sender block (offsets from L.IPERF)
const I = {
  ENABLED: 0,
  DST_IP: 4,
  DST_PORT: 8,
  SRC_PORT: 12,
  LENGTH: 16,
  RATE: 20,
  START: 24,
  END: 32,
  NEXT_SEQ: 40,
  NEXT_SEND: 48,
  STATE: 56,
  SENT: 60,
  RING_FULL: 64,
  FIN_TRIES: 68,
  LAST_FIN: 72,
  REPORT: 80, // u32 flag, then lost, ooo, datagrams, jitterUs, bytes(64), durationUs(64)
} as const;
export const IPERF_STATES = ['waiting', 'sending', 'fin', 'done'] as const;
/** Send no more than this many datagrams in one step; after a pause the schedule restarts instead of bursting. */
const IPERF_BURST = 32;
const IPERF_CATCHUP_NS = 20_000_000;

// sink block (offsets from L.SINK); bitmap of SINK_WINDOW bits at L.SINK_BITMAP
const K = {
  ENABLED: 0,
  PORT: 4,
  RECEIVED: 8,
  BYTES: 12,
  FIRST: 20,
  HIGHEST: 28,
  UNIQUE: 36,
  DUPLICATES: 40,
  OUT_OF_ORDER: 44,
  GAPS: 48,
  FINS: 52,
  STARTED: 56,
  BELOW_WINDOW: 60,
  FIRST_RX: 64,
  LAST_RX: 72,
  MAX_INTERARRIVAL: 80,
  JITTER_NS: 88,
  LAST_TRANSIT: 96,
  PEER_IP: 104,
  PEER_PORT: 108,
  MALFORMED: 112,
} as const;
export const SINK_WINDOW = 8192;

// pinger block (offsets from L.PING); bitmap of PING_WINDOW bits at L.PING_BITMAP
const P = {
  ENABLED: 0,
  DST_IP: 4,
  INTERVAL_NS: 8,
  COUNT: 12,
  SIZE: 16,
  IDENT: 20,
  SENT: 24,
  RECEIVED: 28,
  NEXT: 32,
  RTT_SUM: 40,
  RTT_MAX: 48,
  RTT_MIN: 56,
  DUPLICATES: 64,
  OUT_OF_ORDER: 68,
  HIGHEST: 72,
} as const;
const PING_WINDOW = 1024;

// ---------------------------------------------------------------- RAM helpers

type Mem = GuestContext['mem'];
const TWO32 = 4294967296;
const r32 = (m: Mem, a: number) => m.read32(a);
const w32 = (m: Mem, a: number, v: number) => m.write32(a, v >>> 0);
/** Non-negative integers below 2^53 as two u32 words. */
const r64 = (m: Mem, a: number) => m.read32(a + 4) * TWO32 + m.read32(a);
const w64 = (m: Mem, a: number, v: number) => {
  const x = Math.max(0, Math.floor(v));
  m.write32(a, x % TWO32);
  m.write32(a + 4, Math.floor(x / TWO32));
};
const bump = (m: Mem, a: number, n = 1) => m.write32(a, (m.read32(a) + n) >>> 0);

// ---------------------------------------------------------------- the module

export function createNetStack(nic: NicApi): GuestModule<NetAppConfig> & { receive(ctx: GuestContext, base: number, frame: Uint8Array): void } {
  const myMac = (m: Mem, base: number) => Array.from(m.readBytes(base + L.MAC, 6));
  const nextId = (m: Mem, base: number) => {
    const id = r32(m, base + L.IP_ID);
    w32(m, base + L.IP_ID, (id + 1) & 0xffff);
    return id;
  };

  /** Hands a frame to the NIC now; false when its TX ring is full. */
  function txNow(ctx: GuestContext, base: number, frame: Uint8Array): boolean {
    const m = ctx.mem;
    if (!nic.send(ctx, r32(m, base + L.NIC_BASE), frame)) {
      bump(m, base + C.txRingFull);
      return false;
    }
    bump(m, base + C.txFrames);
    return true;
  }

  /** Sends a frame, queueing it behind earlier ones while the ring is full; false only when the queue is full too. */
  function tx(ctx: GuestContext, base: number, frame: Uint8Array): boolean {
    const m = ctx.mem;
    flushTxq(ctx, base);
    const count = r32(m, base + L.TXQ_COUNT);
    if (count === 0 && txNow(ctx, base, frame)) return true;
    if (count >= TXQ_SLOTS || frame.length > TXQ_SLOT - 2) {
      bump(m, base + L.TXQ_DROPS);
      return false;
    }
    const slot = base + L.TXQ + ((r32(m, base + L.TXQ_HEAD) + count) % TXQ_SLOTS) * TXQ_SLOT;
    m.write16(slot, frame.length);
    m.writeBytes(slot + 2, frame);
    w32(m, base + L.TXQ_COUNT, count + 1);
    return true;
  }

  function flushTxq(ctx: GuestContext, base: number): void {
    const m = ctx.mem;
    let count = r32(m, base + L.TXQ_COUNT);
    let head = r32(m, base + L.TXQ_HEAD);
    while (count > 0) {
      const slot = base + L.TXQ + head * TXQ_SLOT;
      if (!txNow(ctx, base, new Uint8Array(m.readBytes(slot + 2, m.read16(slot))))) break;
      head = (head + 1) % TXQ_SLOTS;
      count--;
    }
    w32(m, base + L.TXQ_HEAD, head);
    w32(m, base + L.TXQ_COUNT, count);
  }

  // ---- ARP cache

  function arpLookup(m: Mem, base: number, ip: number): number[] | null {
    for (let i = 0; i < ARP_ENTRIES; i++) {
      const e = base + L.ARP_CACHE + i * ARP_ENTRY;
      if (m.read8(e + 10) && r32(m, e) === ip) return Array.from(m.readBytes(e + 4, 6));
    }
    return null;
  }

  /** Updates an entry for `ip`; creates one (replacing the oldest) only when `create`. */
  function arpUpdate(ctx: GuestContext, base: number, ip: number, mac: ArrayLike<number>, create: boolean): void {
    const m = ctx.mem;
    const nowS = Math.floor(ctx.nowNs() / 1e9);
    let victim = -1;
    let oldest = Infinity;
    for (let i = 0; i < ARP_ENTRIES; i++) {
      const e = base + L.ARP_CACHE + i * ARP_ENTRY;
      const valid = m.read8(e + 10);
      if (valid && r32(m, e) === ip) {
        m.writeBytes(e + 4, Uint8Array.from(mac));
        w32(m, e + 12, nowS);
        return;
      }
      const seen = valid ? r32(m, e + 12) : -1;
      if (seen < oldest) {
        oldest = seen;
        victim = i;
      }
    }
    if (!create) return;
    const e = base + L.ARP_CACHE + victim * ARP_ENTRY;
    w32(m, e, ip);
    m.writeBytes(e + 4, Uint8Array.from(mac));
    m.write8(e + 10, 1);
    w32(m, e + 12, nowS);
  }

  /** The MAC for `ip`, or null after asking for it (at most every 100 ms per address). */
  function resolve(ctx: GuestContext, base: number, ip: number): number[] | null {
    const m = ctx.mem;
    const mac = arpLookup(m, base, ip);
    if (mac) return mac;
    bump(m, base + C.unresolved);
    const now = ctx.nowNs();
    if (r32(m, base + L.ARP_REQ_IP) !== ip || now >= r64(m, base + L.ARP_REQ_NEXT)) {
      const me = myMac(m, base);
      const myIp = r32(m, base + L.IP);
      if (tx(ctx, base, buildArp(BROADCAST_MAC, me, { op: ARP_REQUEST, senderMac: me, senderIp: myIp, targetMac: [0, 0, 0, 0, 0, 0], targetIp: ip }))) bump(m, base + C.arpRequestsTx);
      w32(m, base + L.ARP_REQ_IP, ip);
      w64(m, base + L.ARP_REQ_NEXT, now + ARP_RETRY_NS);
    }
    return null;
  }

  function startAnnounce(m: Mem, base: number): void {
    w32(m, base + L.ANN_LEFT, r32(m, base + L.ANN_COUNT));
    w64(m, base + L.ANN_NEXT, 0);
  }

  // ---- receive path

  function receive(ctx: GuestContext, base: number, f: Uint8Array): void {
    const m = ctx.mem;
    if (r32(m, base + L.MAGIC) !== MAGIC) return;
    bump(m, base + C.rxFrames);
    if (f.length < 14) {
      bump(m, base + C.rxMalformed);
      return;
    }
    const me = myMac(m, base);
    if (!macEquals(f, 0, me) && !macEquals(f, 0, BROADCAST_MAC)) {
      bump(m, base + C.rxNotMine);
      return;
    }
    const type = rd16(f, 12);
    if (type === ETHERTYPE_ARP) receiveArp(ctx, base, f, me);
    else if (type === ETHERTYPE_IPV4) receiveIp(ctx, base, f, me);
    else bump(m, base + C.rxOtherProto);
  }

  function receiveArp(ctx: GuestContext, base: number, f: Uint8Array, me: number[]): void {
    const m = ctx.mem;
    const a = parseArp(f);
    if (!a) {
      bump(m, base + C.rxMalformed);
      return;
    }
    bump(m, base + C.arpRx);
    const myIp = r32(m, base + L.IP);
    if (a.senderIp === myIp) return; // someone else's announcement of our address: not ours to learn
    const forMe = a.targetIp === myIp;
    if (a.senderIp !== 0) arpUpdate(ctx, base, a.senderIp, a.senderMac, forMe);
    if (a.op === ARP_REQUEST && forMe) {
      if (tx(ctx, base, buildArp(a.senderMac, me, { op: ARP_REPLY, senderMac: me, senderIp: myIp, targetMac: a.senderMac, targetIp: a.senderIp }))) bump(m, base + C.arpRepliesTx);
    }
  }

  function receiveIp(ctx: GuestContext, base: number, f: Uint8Array, me: number[]): void {
    const m = ctx.mem;
    const ip = parseIpv4(f);
    if (!ip) {
      bump(m, base + C.rxMalformed);
      return;
    }
    const myIp = r32(m, base + L.IP);
    const mask = r32(m, base + L.MASK);
    if (ip.dst !== myIp && ip.dst !== 0xffffffff && ip.dst !== ((myIp & mask) | ~mask) >>> 0) {
      bump(m, base + C.rxNotMine);
      return;
    }
    if (ip.fragment) {
      bump(m, base + C.rxFragments);
      return;
    }
    if (ip.protocol === IPPROTO_ICMP) {
      const icmp = parseIcmp(f, ip);
      if (!icmp) {
        bump(m, base + C.rxMalformed);
        return;
      }
      if (icmp.type === ICMP_ECHO_REQUEST && ip.dst === myIp) {
        bump(m, base + C.icmpEchoRx);
        const reply = buildIcmpEcho(
          { dstMac: f.subarray(6, 12), srcMac: me, src: myIp, dst: ip.src, id: nextId(m, base), type: ICMP_ECHO_REPLY, ident: icmp.ident, seq: icmp.seq },
          f.subarray(icmp.dataOff, icmp.dataOff + icmp.dataLen),
        );
        if (tx(ctx, base, reply)) bump(m, base + C.icmpEchoRepliesTx);
      } else if (icmp.type === ICMP_ECHO_REPLY) pingReply(ctx, base, f, ip.src, icmp.ident, icmp.seq, icmp.dataOff, icmp.dataLen);
      else bump(m, base + C.rxOtherProto);
      return;
    }
    if (ip.protocol === IPPROTO_UDP) {
      const u = parseUdp(f, ip);
      if (!u) {
        bump(m, base + C.rxMalformed);
        return;
      }
      bump(m, base + C.udpRx);
      const s = base + L.SINK;
      const ip0 = base + L.IPERF;
      if (r32(m, s + K.ENABLED) && u.dstPort === r32(m, s + K.PORT)) sinkReceive(ctx, base, f, ip.src, u.srcPort, u.payloadOff, u.payloadLen);
      else if (r32(m, ip0 + I.ENABLED) && u.dstPort === r32(m, ip0 + I.SRC_PORT) && ip.src === r32(m, ip0 + I.DST_IP) && u.srcPort === r32(m, ip0 + I.DST_PORT)) {
        iperfReport(ctx, base, f, u.payloadOff, u.payloadLen);
      } else bump(m, base + C.udpNoPort);
      return;
    }
    bump(m, base + C.rxOtherProto);
  }

  // ---- iperf2 sender

  function wallNs(ctx: GuestContext, base: number): number {
    return r64(ctx.mem, base + L.EPOCH_MS) * 1e6 + ctx.nowNs();
  }

  function iperfFrame(ctx: GuestContext, base: number, dstMac: ArrayLike<number>, seq: number): Uint8Array {
    const m = ctx.mem;
    const b = base + L.IPERF;
    const wall = wallNs(ctx, base);
    return buildUdp(
      { dstMac, srcMac: myMac(m, base), src: r32(m, base + L.IP), dst: r32(m, b + I.DST_IP), srcPort: r32(m, b + I.SRC_PORT), dstPort: r32(m, b + I.DST_PORT), id: nextId(m, base) },
      r32(m, b + I.LENGTH),
      (fr, off) => writeDatagram(fr, off, seq, wall),
    );
  }

  function iperfStep(ctx: GuestContext, base: number, now: number): number {
    const m = ctx.mem;
    const b = base + L.IPERF;
    if (!r32(m, b + I.ENABLED)) return Infinity;
    let state = r32(m, b + I.STATE);
    if (state === 0) {
      const start = r64(m, b + I.START);
      if (now < start) return start;
      w32(m, b + I.STATE, (state = 1));
      w64(m, b + I.NEXT_SEND, now);
    }
    if (state === 1) {
      const end = r64(m, b + I.END);
      if (end !== 0 && now >= end) {
        w32(m, b + I.STATE, (state = 2));
        w32(m, b + I.FIN_TRIES, 0);
        w64(m, b + I.LAST_FIN, 0);
      } else {
        const mac = resolve(ctx, base, r32(m, b + I.DST_IP));
        if (!mac) return now + 10_000_000;
        const intervalNs = (r32(m, b + I.LENGTH) * 8 * 1e9) / r32(m, b + I.RATE);
        let next = r64(m, b + I.NEXT_SEND);
        if (now - next > IPERF_CATCHUP_NS) next = now;
        let seq = r64(m, b + I.NEXT_SEQ);
        let full = false;
        for (let n = 0; next <= now && n < IPERF_BURST; n++) {
          if (r32(m, base + L.TXQ_COUNT) > 0 || !txNow(ctx, base, iperfFrame(ctx, base, mac, seq))) {
            bump(m, b + I.RING_FULL);
            full = true;
            break;
          }
          seq++;
          bump(m, b + I.SENT);
          next += intervalNs;
        }
        w64(m, b + I.NEXT_SEQ, seq);
        w64(m, b + I.NEXT_SEND, next);
        const wake = full ? now + 1_000_000 : Math.max(next, now);
        return end !== 0 ? Math.min(wake, end) : wake;
      }
    }
    if (state === 2) {
      if (r32(m, b + I.REPORT) || r32(m, b + I.FIN_TRIES) >= FIN_TRIES) {
        w32(m, b + I.STATE, 3);
        return Infinity;
      }
      const last = r64(m, b + I.LAST_FIN);
      if (last !== 0 && now < last + FIN_INTERVAL_NS) return last + FIN_INTERVAL_NS;
      const mac = resolve(ctx, base, r32(m, b + I.DST_IP));
      if (!mac) return now + 10_000_000;
      // The FIN carries the negated next sequence number.
      if (tx(ctx, base, iperfFrame(ctx, base, mac, -r64(m, b + I.NEXT_SEQ)))) {
        bump(m, b + I.FIN_TRIES);
        w64(m, b + I.LAST_FIN, now);
      }
      return now + FIN_INTERVAL_NS;
    }
    return Infinity;
  }

  function iperfReport(ctx: GuestContext, base: number, f: Uint8Array, off: number, len: number): void {
    const m = ctx.mem;
    const b = base + L.IPERF;
    const r = parseServerReport(f, off, len);
    if (!r || r32(m, b + I.STATE) < 2 || r32(m, b + I.REPORT)) return;
    w32(m, b + I.REPORT + 4, r.lost);
    w32(m, b + I.REPORT + 8, r.outOfOrder);
    w32(m, b + I.REPORT + 12, r.datagrams);
    w32(m, b + I.REPORT + 16, r.jitterUs);
    w64(m, b + I.REPORT + 20, r.bytes);
    w64(m, b + I.REPORT + 28, r.durationUs);
    w32(m, b + I.REPORT, 1);
  }

  // ---- UDP sink

  function sinkReceive(ctx: GuestContext, base: number, f: Uint8Array, srcIp: number, srcPort: number, off: number, len: number): void {
    const m = ctx.mem;
    const s = base + L.SINK;
    const d = parseDatagram(f, off, len);
    if (!d) {
      bump(m, s + K.MALFORMED);
      return;
    }
    const now = ctx.nowNs();
    if (d.seq < 0) {
      bump(m, s + K.FINS);
      sinkAnswerFin(ctx, base, f, srcIp, srcPort, -d.seq);
      return;
    }
    bump(m, s + K.RECEIVED);
    w64(m, s + K.BYTES, r64(m, s + K.BYTES) + len);
    w32(m, s + K.PEER_IP, srcIp);
    w32(m, s + K.PEER_PORT, srcPort);
    // RFC 1889 jitter of transit times (send stamps are the sender's wall clock), in ns.
    const transit = wallNs(ctx, base) - (d.sec * 1e9 + d.usec * 1e3);
    if (r32(m, s + K.STARTED)) {
      const gap = now - r64(m, s + K.LAST_RX);
      if (gap > r64(m, s + K.MAX_INTERARRIVAL)) w64(m, s + K.MAX_INTERARRIVAL, gap);
      const prevTransit = r64(m, s + K.LAST_TRANSIT) - 2 ** 52;
      const j = r64(m, s + K.JITTER_NS);
      w64(m, s + K.JITTER_NS, j + (Math.abs(transit - prevTransit) - j) / 16);
    } else w64(m, s + K.FIRST_RX, now);
    w64(m, s + K.LAST_TRANSIT, transit + 2 ** 52);
    w64(m, s + K.LAST_RX, now);
    const seq = d.seq;
    const bmp = base + L.SINK_BITMAP;
    const at = (q: number) => bmp + Math.floor((q % SINK_WINDOW) / 8);
    const isSet = (q: number) => (m.read8(at(q)) >> (q % 8)) & 1;
    const setBit = (q: number) => m.write8(at(q), m.read8(at(q)) | (1 << (q % 8)));
    const clearBit = (q: number) => m.write8(at(q), m.read8(at(q)) & ~(1 << (q % 8)));
    if (!r32(m, s + K.STARTED)) {
      w32(m, s + K.STARTED, 1);
      w64(m, s + K.FIRST, seq);
      w64(m, s + K.HIGHEST, seq);
      m.fill(bmp, SINK_WINDOW / 8, 0);
      setBit(seq);
      bump(m, s + K.UNIQUE);
      return;
    }
    const hi = r64(m, s + K.HIGHEST);
    if (seq > hi) {
      // The window slides: slots of the sequence numbers skipped (and of seq itself) are reused.
      if (seq > hi + 1) bump(m, s + K.GAPS);
      if (seq - hi >= SINK_WINDOW) m.fill(bmp, SINK_WINDOW / 8, 0);
      else for (let q = hi + 1; q <= seq; q++) clearBit(q);
      setBit(seq);
      w64(m, s + K.HIGHEST, seq);
      bump(m, s + K.UNIQUE);
    } else if (hi - seq >= SINK_WINDOW) {
      bump(m, s + K.BELOW_WINDOW);
    } else if (isSet(seq)) {
      bump(m, s + K.DUPLICATES);
    } else {
      setBit(seq);
      bump(m, s + K.OUT_OF_ORDER);
      bump(m, s + K.UNIQUE);
    }
  }

  function sinkAnswerFin(ctx: GuestContext, base: number, f: Uint8Array, srcIp: number, srcPort: number, finSeq: number): void {
    const m = ctx.mem;
    const s = base + L.SINK;
    const first = r32(m, s + K.STARTED) ? r64(m, s + K.FIRST) : finSeq;
    const unique = r32(m, s + K.UNIQUE);
    const report = {
      flags: (HEADER_VERSION1 | HEADER_SEQNO64B) >>> 0,
      bytes: r64(m, s + K.BYTES),
      durationUs: Math.floor((r64(m, s + K.LAST_RX) - r64(m, s + K.FIRST_RX)) / 1000),
      lost: Math.max(0, finSeq - first - unique),
      outOfOrder: r32(m, s + K.OUT_OF_ORDER),
      datagrams: finSeq - first + 1,
      jitterUs: Math.floor(r64(m, s + K.JITTER_NS) / 1000),
    };
    const frame = buildUdp(
      { dstMac: f.subarray(6, 12), srcMac: myMac(m, base), src: r32(m, base + L.IP), dst: srcIp, srcPort: r32(m, s + K.PORT), dstPort: srcPort, id: nextId(m, base) },
      SERVER_REPORT_LEN,
      (fr, off) => writeServerReport(fr, off, report),
    );
    tx(ctx, base, frame);
  }

  // ---- pinger

  function pingStep(ctx: GuestContext, base: number, now: number): number {
    const m = ctx.mem;
    const p = base + L.PING;
    if (!r32(m, p + P.ENABLED)) return Infinity;
    const count = r32(m, p + P.COUNT);
    const sent = r32(m, p + P.SENT);
    if (count !== 0 && sent >= count) return Infinity;
    const next = r64(m, p + P.NEXT);
    if (now < next) return next;
    const dst = r32(m, p + P.DST_IP);
    const mac = resolve(ctx, base, dst);
    if (!mac) return now + 10_000_000;
    const data = new Uint8Array(Math.max(8, r32(m, p + P.SIZE)));
    const t = Math.floor(now);
    for (let i = 0; i < 8; i++) data[i] = Math.floor(t / 2 ** (8 * i)) & 0xff;
    for (let i = 8; i < data.length; i++) data[i] = i & 0xff;
    const seq = (sent + 1) & 0xffff;
    const f = buildIcmpEcho({ dstMac: mac, srcMac: myMac(m, base), src: r32(m, base + L.IP), dst, id: nextId(m, base), type: ICMP_ECHO_REQUEST, ident: r32(m, p + P.IDENT), seq }, data);
    if (!tx(ctx, base, f)) return now + 1_000_000;
    w32(m, p + P.SENT, sent + 1);
    const interval = r32(m, p + P.INTERVAL_NS);
    // Late (paused): the next one an interval from now, no catch-up burst.
    const n = now - next > interval ? now + interval : next + interval;
    w64(m, p + P.NEXT, n);
    return n;
  }

  function pingReply(ctx: GuestContext, base: number, f: Uint8Array, src: number, ident: number, seq: number, off: number, len: number): void {
    const m = ctx.mem;
    const p = base + L.PING;
    if (!r32(m, p + P.ENABLED) || ident !== r32(m, p + P.IDENT) || src !== r32(m, p + P.DST_IP) || len < 8) {
      bump(m, base + C.rxOtherProto);
      return;
    }
    const bmp = base + L.PING_BITMAP;
    const byte = bmp + Math.floor((seq % PING_WINDOW) / 8);
    const mask = 1 << (seq % 8);
    const hi = r32(m, p + P.HIGHEST);
    if (seq > hi) {
      for (let q = hi + 1; q <= seq && q - hi <= PING_WINDOW; q++) {
        const bq = bmp + Math.floor((q % PING_WINDOW) / 8);
        m.write8(bq, m.read8(bq) & ~(1 << (q % 8)));
      }
      w32(m, p + P.HIGHEST, seq);
    } else if (m.read8(byte) & mask) {
      bump(m, p + P.DUPLICATES);
      return;
    } else bump(m, p + P.OUT_OF_ORDER);
    m.write8(byte, m.read8(byte) | mask);
    bump(m, p + P.RECEIVED);
    let t = 0;
    for (let i = 7; i >= 0; i--) t = t * 256 + f[off + i]!;
    const rtt = Math.max(0, ctx.nowNs() - t);
    w64(m, p + P.RTT_SUM, r64(m, p + P.RTT_SUM) + rtt);
    if (rtt > r64(m, p + P.RTT_MAX)) w64(m, p + P.RTT_MAX, rtt);
    const min = r64(m, p + P.RTT_MIN);
    if (min === 0 || rtt < min) w64(m, p + P.RTT_MIN, rtt);
  }

  // ---- module

  return {
    name: 'netApp',
    regionBytes: () => NET_REGION_BYTES,

    boot(ctx, base, cfg) {
      const m = ctx.mem;
      const nicBase = moduleBase(ctx, MODULE_IDS.nic);
      if (nicBase < 0) throw new Error("netApp needs the guest's 'nic' module");
      const ip = parseIp(cfg.ip);
      const prefix = cfg.prefixLen ?? 24;
      if (!Number.isInteger(prefix) || prefix < 1 || prefix > 30) throw new RangeError(`prefixLen must be 1..30, got ${prefix}`);
      const tickNs = Math.round((cfg.tickMs ?? 5) * 1e6);
      const pauseNs = Math.round((cfg.pauseDetectMs ?? 10) * 1e6);
      if (!(tickNs > 0 && tickNs < 2 ** 32 && pauseNs > tickNs && pauseNs < 2 ** 32)) throw new RangeError('tickMs must be positive and below pauseDetectMs (< 4 s)');
      m.fill(base, NET_REGION_BYTES, 0);
      w32(m, base + L.MAGIC, MAGIC);
      w32(m, base + L.NIC_BASE, nicBase);
      m.writeBytes(base + L.MAC, Uint8Array.from(nic.mac(ctx, nicBase)));
      w32(m, base + L.IP, ip);
      w32(m, base + L.MASK, (0xffffffff << (32 - prefix)) >>> 0);
      w32(m, base + L.TICK_NS, tickNs);
      w32(m, base + L.PAUSE_NS, pauseNs);
      const now = ctx.nowNs();
      w64(m, base + L.LAST_STEP, now);
      w32(m, base + L.ANN_COUNT, cfg.announce?.count ?? 3);
      w32(m, base + L.ANN_INTERVAL_NS, Math.round((cfg.announce?.intervalMs ?? 50) * 1e6));
      startAnnounce(m, base);
      // The guest reads its real-time clock once at boot; send timestamps are that plus guest time.
      w64(m, base + L.EPOCH_MS, Date.now());
      if (cfg.iperf) {
        const c = cfg.iperf;
        const len = c.length ?? IPERF_DEFAULT_LEN;
        if (!Number.isInteger(len) || len < IPERF_MIN_PAYLOAD || len > 1472) throw new RangeError(`iperf datagram length must be ${IPERF_MIN_PAYLOAD}..1472 bytes, got ${len}`);
        if (!(c.rateBps > 0 && c.rateBps < 2 ** 32)) throw new RangeError(`iperf rate must be 1 bit/s .. 4 Gbit/s, got ${c.rateBps}`);
        const b = base + L.IPERF;
        w32(m, b + I.ENABLED, 1);
        w32(m, b + I.DST_IP, parseIp(c.dst));
        w32(m, b + I.DST_PORT, c.port ?? IPERF_PORT);
        w32(m, b + I.SRC_PORT, c.srcPort ?? 5001);
        w32(m, b + I.LENGTH, len);
        w32(m, b + I.RATE, Math.round(c.rateBps));
        const start = now + (c.startDelayMs ?? 0) * 1e6;
        w64(m, b + I.START, start);
        w64(m, b + I.END, c.durationMs ? start + c.durationMs * 1e6 : 0);
        w64(m, b + I.NEXT_SEQ, 1);
      }
      if (cfg.sink) {
        w32(m, base + L.SINK + K.ENABLED, 1);
        w32(m, base + L.SINK + K.PORT, cfg.sink.port ?? IPERF_PORT);
      }
      if (cfg.ping) {
        const p = base + L.PING;
        w32(m, p + P.ENABLED, 1);
        w32(m, p + P.DST_IP, parseIp(cfg.ping.dst));
        w32(m, p + P.INTERVAL_NS, Math.round((cfg.ping.intervalMs ?? 100) * 1e6));
        w32(m, p + P.COUNT, cfg.ping.count ?? 0);
        w32(m, p + P.SIZE, cfg.ping.size ?? 56);
        w32(m, p + P.IDENT, (ip ^ (ip >>> 16)) & 0xffff);
      }
    },

    step(ctx, base) {
      const m = ctx.mem;
      if (r32(m, base + L.MAGIC) !== MAGIC) throw new Error(`netApp: no booted stack at 0x${base.toString(16)}`);
      const now = ctx.nowNs();
      if (now - r64(m, base + L.LAST_STEP) > r32(m, base + L.PAUSE_NS)) {
        bump(m, base + C.pausesDetected);
        startAnnounce(m, base);
      }
      w64(m, base + L.LAST_STEP, now);
      const link = nic.linkUp(ctx, r32(m, base + L.NIC_BASE));
      if (link !== (r32(m, base + L.LINK) === 1)) {
        w32(m, base + L.LINK, link ? 1 : 0);
        if (link) {
          bump(m, base + C.linkUps);
          startAnnounce(m, base);
        }
      }
      if (r32(m, base + L.ANN_REQ)) {
        w32(m, base + L.ANN_REQ, 0);
        startAnnounce(m, base);
      }
      if (link && r32(m, base + L.ANN_LEFT) > 0 && now >= r64(m, base + L.ANN_NEXT)) {
        if (tx(ctx, base, gratuitousArp(myMac(m, base), r32(m, base + L.IP)))) {
          bump(m, base + C.garpTx);
          w32(m, base + L.ANN_LEFT, r32(m, base + L.ANN_LEFT) - 1);
          w64(m, base + L.ANN_NEXT, now + r32(m, base + L.ANN_INTERVAL_NS));
        }
      }
      flushTxq(ctx, base);
      let wake = now + r32(m, base + L.TICK_NS);
      if (r32(m, base + L.TXQ_COUNT) > 0) wake = Math.min(wake, now + 1_000_000);
      if (link) {
        wake = Math.min(wake, iperfStep(ctx, base, now), pingStep(ctx, base, now));
      }
      return wake;
    },

    receive,
  };
}

// ---------------------------------------------------------------- reading the region (tests, tools, observers)

export interface NetView {
  ip: number;
  mac: number[];
  link: boolean;
  counters: Record<NetCounter, number>;
  /** Frames waiting for room in the TX ring, and frames dropped because that queue was full. */
  txQueued: number;
  txQueueDrops: number;
  arp: Array<{ ip: number; mac: number[] }>;
  iperf: {
    enabled: boolean;
    state: (typeof IPERF_STATES)[number];
    sent: number;
    nextSeq: number;
    ringFull: number;
    finTries: number;
    report: { lost: number; outOfOrder: number; datagrams: number; jitterUs: number; bytes: number; durationUs: number } | null;
  };
  sink: {
    enabled: boolean;
    port: number;
    received: number;
    bytes: number;
    first: number;
    highest: number;
    unique: number;
    /** Sequence numbers between the first and the highest never received. */
    missing: number;
    duplicates: number;
    outOfOrder: number;
    gaps: number;
    fins: number;
    belowWindow: number;
    maxInterArrivalNs: number;
    jitterNs: number;
    malformed: number;
  };
  ping: { enabled: boolean; sent: number; received: number; duplicates: number; outOfOrder: number; rttAvgNs: number; rttMaxNs: number; rttMinNs: number };
}

/** Parses a netApp region read out of guest RAM (e.g. with the agent's memRead). */
export function parseNetRegion(r: Uint8Array): NetView {
  const v = new DataView(r.buffer, r.byteOffset, r.byteLength);
  const u32 = (o: number) => v.getUint32(o, true);
  const u64 = (o: number) => u32(o + 4) * TWO32 + u32(o);
  if (u32(L.MAGIC) !== MAGIC) throw new Error('not a netApp region');
  const counters = Object.fromEntries(COUNTER_NAMES.map((n) => [n, u32(C[n])])) as Record<NetCounter, number>;
  const arp: NetView['arp'] = [];
  for (let i = 0; i < ARP_ENTRIES; i++) {
    const e = L.ARP_CACHE + i * ARP_ENTRY;
    if (r[e + 10]) arp.push({ ip: u32(e), mac: Array.from(r.subarray(e + 4, e + 10)) });
  }
  const b = L.IPERF;
  const s = L.SINK;
  const p = L.PING;
  const first = u64(s + K.FIRST);
  const highest = u64(s + K.HIGHEST);
  const started = u32(s + K.STARTED) === 1;
  const received = u32(p + P.RECEIVED);
  return {
    ip: u32(L.IP),
    mac: Array.from(r.subarray(L.MAC, L.MAC + 6)),
    link: u32(L.LINK) === 1,
    counters,
    txQueued: u32(L.TXQ_COUNT),
    txQueueDrops: u32(L.TXQ_DROPS),
    arp,
    iperf: {
      enabled: u32(b + I.ENABLED) === 1,
      state: IPERF_STATES[u32(b + I.STATE)] ?? 'done',
      sent: u32(b + I.SENT),
      nextSeq: u64(b + I.NEXT_SEQ),
      ringFull: u32(b + I.RING_FULL),
      finTries: u32(b + I.FIN_TRIES),
      report: u32(b + I.REPORT)
        ? { lost: u32(b + I.REPORT + 4), outOfOrder: u32(b + I.REPORT + 8), datagrams: u32(b + I.REPORT + 12), jitterUs: u32(b + I.REPORT + 16), bytes: u64(b + I.REPORT + 20), durationUs: u64(b + I.REPORT + 28) }
        : null,
    },
    sink: {
      enabled: u32(s + K.ENABLED) === 1,
      port: u32(s + K.PORT),
      received: u32(s + K.RECEIVED),
      bytes: u64(s + K.BYTES),
      first,
      highest,
      unique: u32(s + K.UNIQUE),
      missing: started ? highest - first + 1 - u32(s + K.UNIQUE) : 0,
      duplicates: u32(s + K.DUPLICATES),
      outOfOrder: u32(s + K.OUT_OF_ORDER),
      gaps: u32(s + K.GAPS),
      fins: u32(s + K.FINS),
      belowWindow: u32(s + K.BELOW_WINDOW),
      maxInterArrivalNs: u64(s + K.MAX_INTERARRIVAL),
      jitterNs: u64(s + K.JITTER_NS),
      malformed: u32(s + K.MALFORMED),
    },
    ping: {
      enabled: u32(p + P.ENABLED) === 1,
      sent: u32(p + P.SENT),
      received,
      duplicates: u32(p + P.DUPLICATES),
      outOfOrder: u32(p + P.OUT_OF_ORDER),
      rttAvgNs: received ? u64(p + P.RTT_SUM) / received : 0,
      rttMaxNs: u64(p + P.RTT_MAX),
      rttMinNs: u64(p + P.RTT_MIN),
    },
  };
}

/** Offset of the announce doorbell in the region: write a nonzero u32 there to make the guest announce itself. */
export const NET_ANNOUNCE_DOORBELL = L.ANN_REQ;
