/**
 * Wire formats of the guest's network stack: Ethernet II, ARP (RFC 826),
 * IPv4 (RFC 791, no options sent, no fragmentation), ICMP echo (RFC 792),
 * UDP (RFC 768) with the Internet checksum (RFC 1071). Pure functions over
 * byte arrays: the guest code that uses them keeps its state in guest RAM.
 * Big-endian (network order) throughout; IPv4 addresses are u32 numbers.
 */

export const ETH_HLEN = 14;
export const ETH_ZLEN = 60;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const IPV4_HLEN = 20;
export const UDP_HLEN = 8;
export const ICMP_HLEN = 8;
export const ARP_LEN = 28;
export const IPPROTO_ICMP = 1;
export const IPPROTO_UDP = 17;
export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
export const BROADCAST_MAC: readonly number[] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

export function parseIp(s: string): number {
  const p = s.split('.');
  if (p.length !== 4 || p.some((x) => !/^\d{1,3}$/.test(x) || Number(x) > 255)) throw new RangeError(`not an IPv4 address: '${s}'`);
  return ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0;
}

export function ipToString(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 0xff}.${(ip >>> 8) & 0xff}.${ip & 0xff}`;
}

export function rd16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}
export function rd32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
export function wr16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}
export function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** Ones' complement sum of 16-bit words (RFC 1071), not yet folded or inverted; odd tail padded with zero. */
export function sum16(b: Uint8Array, off: number, len: number, initial = 0): number {
  let s = initial;
  const end = off + (len & ~1);
  for (let i = off; i < end; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (len & 1) s += b[off + len - 1]! << 8;
  return s;
}

/** Folds a sum to 16 bits and inverts it: the Internet checksum. */
export function foldChecksum(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

export function internetChecksum(b: Uint8Array, off: number, len: number): number {
  return foldChecksum(sum16(b, off, len));
}

export function macEquals(b: Uint8Array, off: number, mac: ArrayLike<number>): boolean {
  for (let i = 0; i < 6; i++) if (b[off + i] !== mac[i]) return false;
  return true;
}

export function writeEth(f: Uint8Array, dst: ArrayLike<number>, src: ArrayLike<number>, type: number): void {
  for (let i = 0; i < 6; i++) {
    f[i] = dst[i]!;
    f[6 + i] = src[i]!;
  }
  wr16(f, 12, type);
}

// ---------------------------------------------------------------- ARP

export interface ArpPacket {
  op: number;
  senderMac: number[];
  senderIp: number;
  targetMac: number[];
  targetIp: number;
}

/** An Ethernet/IPv4 ARP packet in a frame, or null. */
export function parseArp(f: Uint8Array): ArpPacket | null {
  if (f.length < ETH_HLEN + ARP_LEN || rd16(f, 12) !== ETHERTYPE_ARP) return null;
  const a = ETH_HLEN;
  if (rd16(f, a) !== 1 || rd16(f, a + 2) !== ETHERTYPE_IPV4 || f[a + 4] !== 6 || f[a + 5] !== 4) return null;
  return {
    op: rd16(f, a + 6),
    senderMac: Array.from(f.subarray(a + 8, a + 14)),
    senderIp: rd32(f, a + 14),
    targetMac: Array.from(f.subarray(a + 18, a + 24)),
    targetIp: rd32(f, a + 24),
  };
}

/** An ARP frame, padded to the Ethernet minimum. */
export function buildArp(ethDst: ArrayLike<number>, ethSrc: ArrayLike<number>, p: ArpPacket): Uint8Array {
  const f = new Uint8Array(ETH_ZLEN);
  writeEth(f, ethDst, ethSrc, ETHERTYPE_ARP);
  const a = ETH_HLEN;
  wr16(f, a, 1);
  wr16(f, a + 2, ETHERTYPE_IPV4);
  f[a + 4] = 6;
  f[a + 5] = 4;
  wr16(f, a + 6, p.op);
  f.set(p.senderMac, a + 8);
  wr32(f, a + 14, p.senderIp);
  f.set(p.targetMac, a + 18);
  wr32(f, a + 24, p.targetIp);
  return f;
}

/**
 * Gratuitous ARP announcing (mac, ip): a broadcast request whose sender and
 * target address are both `ip` (what Linux sends on NETDEV_NOTIFY_PEERS).
 * Peers update their caches; switches learn `mac` on the port it came from.
 */
export function gratuitousArp(mac: ArrayLike<number>, ip: number): Uint8Array {
  return buildArp(BROADCAST_MAC, mac, { op: ARP_REQUEST, senderMac: Array.from(mac), senderIp: ip, targetMac: [0, 0, 0, 0, 0, 0], targetIp: ip });
}

// ---------------------------------------------------------------- IPv4

export interface Ipv4Header {
  ihl: number;
  totalLength: number;
  id: number;
  ttl: number;
  protocol: number;
  src: number;
  dst: number;
  /** More-fragments set or a nonzero fragment offset. */
  fragment: boolean;
}

/**
 * The IPv4 header of a frame, validated (version, header length, header
 * checksum, total length within the frame); null when it is not sound.
 */
export function parseIpv4(f: Uint8Array): Ipv4Header | null {
  if (f.length < ETH_HLEN + IPV4_HLEN || rd16(f, 12) !== ETHERTYPE_IPV4) return null;
  const o = ETH_HLEN;
  const vihl = f[o]!;
  const ihl = (vihl & 0x0f) * 4;
  if (vihl >> 4 !== 4 || ihl < IPV4_HLEN || f.length < o + ihl) return null;
  const totalLength = rd16(f, o + 2);
  if (totalLength < ihl || o + totalLength > f.length) return null;
  if (internetChecksum(f, o, ihl) !== 0) return null;
  const frag = rd16(f, o + 6);
  return { ihl, totalLength, id: rd16(f, o + 4), ttl: f[o + 8]!, protocol: f[o + 9]!, src: rd32(f, o + 12), dst: rd32(f, o + 16), fragment: (frag & 0x3fff) !== 0 };
}

/** Writes a 20-byte IPv4 header (DF set, no options) at ETH_HLEN, checksum included. */
export function writeIpv4(f: Uint8Array, p: { totalLength: number; id: number; ttl?: number; protocol: number; src: number; dst: number }): void {
  const o = ETH_HLEN;
  f[o] = 0x45;
  f[o + 1] = 0;
  wr16(f, o + 2, p.totalLength);
  wr16(f, o + 4, p.id & 0xffff);
  wr16(f, o + 6, 0x4000);
  f[o + 8] = p.ttl ?? 64;
  f[o + 9] = p.protocol;
  wr16(f, o + 10, 0);
  wr32(f, o + 12, p.src);
  wr32(f, o + 16, p.dst);
  wr16(f, o + 10, internetChecksum(f, o, IPV4_HLEN));
}

// ---------------------------------------------------------------- UDP

function pseudoSum(src: number, dst: number, proto: number, len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len;
}

/**
 * An Ethernet + IPv4 + UDP frame around `payloadLen` bytes that `fill`
 * writes at the offset it is given (so payloads are written in place, not
 * copied). UDP checksum computed over the pseudo-header.
 */
export function buildUdp(
  p: { dstMac: ArrayLike<number>; srcMac: ArrayLike<number>; src: number; dst: number; srcPort: number; dstPort: number; id: number; ttl?: number },
  payloadLen: number,
  fill: (frame: Uint8Array, off: number) => void,
): Uint8Array {
  const udpLen = UDP_HLEN + payloadLen;
  const f = new Uint8Array(Math.max(ETH_ZLEN, ETH_HLEN + IPV4_HLEN + udpLen));
  writeEth(f, p.dstMac, p.srcMac, ETHERTYPE_IPV4);
  writeIpv4(f, { totalLength: IPV4_HLEN + udpLen, id: p.id, ttl: p.ttl, protocol: IPPROTO_UDP, src: p.src, dst: p.dst });
  const u = ETH_HLEN + IPV4_HLEN;
  wr16(f, u, p.srcPort);
  wr16(f, u + 2, p.dstPort);
  wr16(f, u + 4, udpLen);
  wr16(f, u + 6, 0);
  fill(f, u + UDP_HLEN);
  let c = foldChecksum(sum16(f, u, udpLen, pseudoSum(p.src, p.dst, IPPROTO_UDP, udpLen)));
  if (c === 0) c = 0xffff; // RFC 768: a computed zero is sent as all ones
  wr16(f, u + 6, c);
  return f;
}

export interface UdpDatagram {
  srcPort: number;
  dstPort: number;
  /** Offset of the payload in the frame. */
  payloadOff: number;
  payloadLen: number;
}

/** The UDP datagram in an IPv4 frame whose header `ip` describes; null when malformed or the checksum fails. */
export function parseUdp(f: Uint8Array, ip: Ipv4Header): UdpDatagram | null {
  const u = ETH_HLEN + ip.ihl;
  const avail = ip.totalLength - ip.ihl;
  if (avail < UDP_HLEN) return null;
  const len = rd16(f, u + 4);
  if (len < UDP_HLEN || len > avail) return null;
  if (rd16(f, u + 6) !== 0 && foldChecksum(sum16(f, u, len, pseudoSum(ip.src, ip.dst, IPPROTO_UDP, len))) !== 0) return null;
  return { srcPort: rd16(f, u), dstPort: rd16(f, u + 2), payloadOff: u + UDP_HLEN, payloadLen: len - UDP_HLEN };
}

// ---------------------------------------------------------------- ICMP

export interface IcmpMessage {
  type: number;
  code: number;
  ident: number;
  seq: number;
  /** Offset and length of the data after the 8-byte echo header. */
  dataOff: number;
  dataLen: number;
}

export function parseIcmp(f: Uint8Array, ip: Ipv4Header): IcmpMessage | null {
  const o = ETH_HLEN + ip.ihl;
  const len = ip.totalLength - ip.ihl;
  if (len < ICMP_HLEN || internetChecksum(f, o, len) !== 0) return null;
  return { type: f[o]!, code: f[o + 1]!, ident: rd16(f, o + 4), seq: rd16(f, o + 6), dataOff: o + ICMP_HLEN, dataLen: len - ICMP_HLEN };
}

/** An echo message (request or reply) carrying `data`. */
export function buildIcmpEcho(
  p: { dstMac: ArrayLike<number>; srcMac: ArrayLike<number>; src: number; dst: number; id: number; type: number; ident: number; seq: number; ttl?: number },
  data: Uint8Array,
): Uint8Array {
  const icmpLen = ICMP_HLEN + data.length;
  const f = new Uint8Array(Math.max(ETH_ZLEN, ETH_HLEN + IPV4_HLEN + icmpLen));
  writeEth(f, p.dstMac, p.srcMac, ETHERTYPE_IPV4);
  writeIpv4(f, { totalLength: IPV4_HLEN + icmpLen, id: p.id, ttl: p.ttl, protocol: IPPROTO_ICMP, src: p.src, dst: p.dst });
  const o = ETH_HLEN + IPV4_HLEN;
  f[o] = p.type;
  f[o + 1] = 0;
  wr16(f, o + 4, p.ident);
  wr16(f, o + 6, p.seq);
  f.set(data, o + ICMP_HLEN);
  wr16(f, o + 2, internetChecksum(f, o, icmpLen));
  return f;
}
