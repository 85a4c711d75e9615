/**
 * iperf 2's UDP payload, as `iperf -s -u` (2.1.x, Debian's `iperf`) parses
 * it — learned from iperf2's include/payloads.h, src/Listener.cpp and
 * src/Server.cpp, and checked against a real server:
 *
 *   offset  field (all big-endian u32)
 *   0       id      sequence number, low 32 bits
 *   4       tv_sec  send time, seconds
 *   8       tv_usec send time, microseconds
 *   12      id2     sequence number, high 32 bits (used when HEADER_SEQNO64B)
 *   16      flags   client header (client_hdr_v1): HEADER_SEQNO64B only, so
 *                   the server runs a plain receive test (no dual/tradeoff,
 *                   no extended header, no reverse)
 *   20..39  numThreads, mPort, mBufLen, mWinBand, mAmount: zero
 *
 * The sequence starts at 1. The last datagram carries the negated next
 * sequence number (the FIN); the server then answers with its report for
 * the stream in a datagram to the sender's address and port:
 *
 *   0..15   UDP_datagram (zero)
 *   16      flags (HEADER_VERSION1 | HEADER_SEQNO64B [| HEADER_EXTEND])
 *   20, 24  total_len1 (high), total_len2 (low): bytes received
 *   28, 32  stop_sec, stop_usec: stream duration
 *   36      error_cnt: datagrams lost
 *   40      outorder_cnt
 *   44      datagrams: highest sequence number seen (the FIN's)
 *   48, 52  jitter1 (s), jitter2 (µs)
 *
 * The client resends the FIN (up to 10 times, 250 ms apart) until the report
 * arrives. With id2 always the high half of the signed 64-bit sequence
 * number, servers that read 32-bit and 64-bit sequence numbers agree.
 */
import { rd32, wr32 } from './wire.js';

export const IPERF_PORT = 5001;
export const IPERF_DEFAULT_LEN = 1470;
/** UDP_datagram + client_hdr_v1. */
export const IPERF_MIN_PAYLOAD = 40;
export const HEADER_VERSION1 = 0x80000000;
export const HEADER_EXTEND = 0x40000000;
export const HEADER_SEQNO64B = 0x08000000;
export const SERVER_REPORT_LEN = 128;
export const FIN_TRIES = 10;
export const FIN_INTERVAL_NS = 250_000_000;

const TWO32 = 4294967296;

/** Writes the 64-bit signed sequence number as id (low) and id2 (high). */
export function writeSeq(b: Uint8Array, off: number, seq: number): void {
  if (!Number.isSafeInteger(seq)) throw new RangeError(`sequence number ${seq}`);
  let lo: number;
  let hi: number;
  if (seq >= 0) {
    lo = seq % TWO32;
    hi = Math.floor(seq / TWO32);
  } else {
    const m = -seq;
    lo = 0xffffffff - (m % TWO32) + 1;
    hi = 0xffffffff - Math.floor(m / TWO32);
    if (lo === TWO32) {
      lo = 0;
      hi += 1;
    }
  }
  wr32(b, off, lo);
  wr32(b, off + 12, hi >>> 0);
}

/** The signed 64-bit sequence number of a datagram. */
export function readSeq(b: Uint8Array, off: number): number {
  const lo = rd32(b, off);
  const hi = rd32(b, off + 12);
  if (hi < 0x80000000) return hi * TWO32 + lo;
  return -((0xffffffff - hi) * TWO32 + (0xffffffff - lo) + 1);
}

/** Header of one client datagram at `off` (the payload's start); the rest of the payload is left as it is. */
export function writeDatagram(b: Uint8Array, off: number, seq: number, wallNs: number): void {
  writeSeq(b, off, seq);
  const us = Math.floor(wallNs / 1000);
  wr32(b, off + 4, Math.floor(us / 1e6) >>> 0);
  wr32(b, off + 8, us % 1e6);
  wr32(b, off + 16, HEADER_SEQNO64B);
  for (let i = 20; i < IPERF_MIN_PAYLOAD; i++) b[off + i] = 0;
}

export interface ClientDatagram {
  seq: number;
  sec: number;
  usec: number;
  flags: number;
}

export function parseDatagram(b: Uint8Array, off: number, len: number): ClientDatagram | null {
  if (len < 16) return null;
  return { seq: readSeq(b, off), sec: rd32(b, off + 4), usec: rd32(b, off + 8), flags: len >= 20 ? rd32(b, off + 16) : 0 };
}

export interface ServerReport {
  flags: number;
  bytes: number;
  durationUs: number;
  lost: number;
  outOfOrder: number;
  datagrams: number;
  jitterUs: number;
}

/** The server's answer to a FIN (what iperf's write_UDP_AckFIN sends). */
export function writeServerReport(b: Uint8Array, off: number, r: ServerReport): void {
  b.fill(0, off, off + SERVER_REPORT_LEN);
  wr32(b, off + 16, r.flags);
  wr32(b, off + 20, Math.floor(r.bytes / TWO32));
  wr32(b, off + 24, r.bytes % TWO32);
  wr32(b, off + 28, Math.floor(r.durationUs / 1e6));
  wr32(b, off + 32, r.durationUs % 1e6);
  wr32(b, off + 36, r.lost);
  wr32(b, off + 40, r.outOfOrder);
  wr32(b, off + 44, r.datagrams);
  wr32(b, off + 48, Math.floor(r.jitterUs / 1e6));
  wr32(b, off + 52, r.jitterUs % 1e6);
}

/** A server report, recognised by HEADER_VERSION1 in its flags; null otherwise. */
export function parseServerReport(b: Uint8Array, off: number, len: number): ServerReport | null {
  if (len < 56) return null;
  const flags = rd32(b, off + 16);
  if (!(flags & HEADER_VERSION1)) return null;
  return {
    flags,
    bytes: rd32(b, off + 20) * TWO32 + rd32(b, off + 24),
    durationUs: rd32(b, off + 28) * 1e6 + rd32(b, off + 32),
    lost: rd32(b, off + 36),
    outOfOrder: rd32(b, off + 40),
    datagrams: rd32(b, off + 44),
    jitterUs: rd32(b, off + 48) * 1e6 + rd32(b, off + 52),
  };
}
