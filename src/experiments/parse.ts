/**
 * Reading the real tools' output onto the experiment's clock (wall-clock ms).
 *
 * iperf 2 (`iperf -s -u -i T -y C -e`) prints one CSV line per interval:
 *   time,srcIp,srcPort,dstIp,dstPort,id,start-end,bytes,bits/s,jitterMs,lost,total,lost%,outOfOrder
 * with the interval in seconds since the stream's first datagram, to one
 * decimal (so T is at least 0.1 s). A server
 * prints an interval when the first datagram after its end arrives, so the
 * earliest any line reached us after its interval's end is the reporting
 * delay alone: `anchorIperf` places the intervals on the wall clock with that
 * offset (accurate to that delay, a few ms).
 *
 * iputils ping with `-D -O` prints `[epoch.micro] 64 bytes from IP:
 * icmp_seq=N ttl=T time=R ms` per reply and `[epoch.micro] no answer yet for
 * icmp_seq=N` when it sends the next request without a reply to this one.
 */
import type { StampedLine } from './system.js';

export interface IperfInterval {
  /** iperf's id of the stream (its transfer id). */
  id: number;
  /** Interval in seconds since the stream's first datagram, as iperf prints it. */
  startS: number;
  endS: number;
  bytes: number;
  bitsPerSec: number;
  jitterMs: number;
  lost: number;
  total: number;
  outOfOrder: number;
  /** When the line reached us. */
  arrivalWallMs: number;
  /** The interval on the wall clock (anchorIperf). */
  startWallMs: number;
  endWallMs: number;
}

/** One interval line of `iperf -y C`, or null for anything else. */
export function parseIperfCsv(l: StampedLine): IperfInterval | null {
  const f = l.line.trim().split(',');
  if (f.length < 14) return null;
  const iv = /^(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$/.exec(f[6]!);
  if (!iv) return null;
  const n = (i: number) => Number(f[i]);
  const r: IperfInterval = {
    id: n(5),
    startS: Number(iv[1]),
    endS: Number(iv[2]),
    bytes: n(7),
    bitsPerSec: n(8),
    jitterMs: n(9),
    lost: n(10),
    total: n(11),
    outOfOrder: n(13),
    arrivalWallMs: l.wallMs,
    startWallMs: NaN,
    endWallMs: NaN,
  };
  return [r.startS, r.endS, r.bytes, r.lost, r.total].every(Number.isFinite) ? r : null;
}

export interface IperfSeries {
  intervals: IperfInterval[];
  /**
   * Lines whose interval rounds to zero length (`27.9-27.9`): the partial
   * interval iperf prints when it stops. `-y C` prints one decimal, so its
   * length is unknown; kept apart, out of the series.
   */
  partial: IperfInterval[];
  /**
   * Lines of other transfers: datagrams still arriving while the server
   * shuts down open a transfer of their own (its first sequence number
   * makes it look like the stream lost everything before).
   */
  others: IperfInterval[];
  /** The stream's totals line (start 0, spanning many intervals), when iperf printed one. */
  summary: IperfInterval | null;
  /** Wall-clock ms of the stream's time 0 (its earliest-reported interval end, minus the interval). */
  originWallMs: number;
}

/** Interval lines of one stream, placed on the wall clock; the totals line set apart. */
export function anchorIperf(lines: StampedLine[], intervalS: number): IperfSeries {
  const parsed = lines.map(parseIperfCsv).filter((x): x is IperfInterval => x !== null);
  // The stream is the transfer of the first line.
  const all = parsed.filter((x) => x.id === parsed[0]?.id);
  const others = parsed.filter((x) => x.id !== parsed[0]?.id);
  const isSummary = (x: IperfInterval) => x.startS === 0 && x.endS - x.startS > intervalS * 1.5;
  const intervals = all.filter((x) => !isSummary(x) && x.endS > x.startS);
  const partial = all.filter((x) => !isSummary(x) && x.endS <= x.startS);
  const summary = all.filter(isSummary).at(-1) ?? null;
  let origin = Infinity;
  for (const x of intervals) origin = Math.min(origin, x.arrivalWallMs - x.endS * 1000);
  if (!Number.isFinite(origin)) origin = NaN;
  for (const x of [...intervals, ...partial, ...(summary ? [summary] : [])]) {
    x.startWallMs = origin + x.startS * 1000;
    x.endWallMs = origin + x.endS * 1000;
  }
  return { intervals, partial, others, summary, originWallMs: origin };
}

export interface PingReply {
  seq: number;
  replyWallMs: number;
  rttMs: number;
  /** replyWallMs − rttMs: when the request left. */
  sentWallMs: number;
}

export interface PingRecord {
  seq: number;
  /** When the request left (measured for answered ones, interpolated for the rest). */
  sentWallMs: number;
  replyWallMs: number | null;
  rttMs: number | null;
  lost: boolean;
}

const REPLY = /^\[(\d+\.\d+)\]\s+\d+ bytes from [^:]+: icmp_seq=(\d+) .*time=([\d.]+) ms/;
const NO_ANSWER = /^\[(\d+\.\d+)\]\s+no answer yet for icmp_seq=(\d+)/;
const SUMMARY = /(\d+) packets transmitted, (\d+) received/;

export interface PingSeries {
  records: PingRecord[];
  transmitted: number | null;
  received: number;
  duplicates: number;
}

/**
 * Every request of a `ping -D -O` run: answered ones with their reply time
 * and RTT, the others lost. Send times of lost requests are interpolated
 * between the nearest answered ones (ping sends at a fixed interval).
 */
export function parsePing(lines: StampedLine[], intervalMs: number): PingSeries {
  const replies = new Map<number, PingReply>();
  let duplicates = 0;
  let maxSeq = 0;
  let transmitted: number | null = null;
  for (const { line } of lines) {
    const r = REPLY.exec(line);
    if (r) {
      const seq = Number(r[2]);
      const replyWallMs = Number(r[1]) * 1000;
      const rttMs = Number(r[3]);
      if (replies.has(seq)) duplicates++;
      else replies.set(seq, { seq, replyWallMs, rttMs, sentWallMs: replyWallMs - rttMs });
      maxSeq = Math.max(maxSeq, seq);
      continue;
    }
    const n = NO_ANSWER.exec(line);
    if (n) {
      maxSeq = Math.max(maxSeq, Number(n[2]));
      continue;
    }
    const s = SUMMARY.exec(line);
    if (s) transmitted = Number(s[1]);
  }
  // iputils numbers requests from 1; the summary counts every one sent.
  const last = Math.max(maxSeq, transmitted ?? 0);
  const answered = [...replies.values()].sort((a, b) => a.seq - b.seq);
  const records: PingRecord[] = [];
  let k = 0; // index of the first answered request with seq ≥ current
  for (let seq = 1; seq <= last; seq++) {
    while (k < answered.length && answered[k]!.seq < seq) k++;
    const hit = replies.get(seq);
    if (hit) {
      records.push({ seq, sentWallMs: hit.sentWallMs, replyWallMs: hit.replyWallMs, rttMs: hit.rttMs, lost: false });
      continue;
    }
    const before = k > 0 ? answered[k - 1] : undefined;
    const after = answered[k];
    let sent: number;
    if (before && after) sent = before.sentWallMs + ((after.sentWallMs - before.sentWallMs) * (seq - before.seq)) / (after.seq - before.seq);
    else if (before) sent = before.sentWallMs + (seq - before.seq) * intervalMs;
    else if (after) sent = after.sentWallMs - (after.seq - seq) * intervalMs;
    else sent = NaN;
    records.push({ seq, sentWallMs: sent, replyWallMs: null, rttMs: null, lost: true });
  }
  return { records, transmitted, received: replies.size, duplicates };
}
