/**
 * What the series say, as pure functions: the migration's phases on the
 * wall clock, the outage that ping and iperf saw across the switch-over, and
 * pre-copy time against what the link allows.
 */
import type { MigrationEvent } from '../engine/types.js';
import type { IperfInterval, PingRecord } from './parse.js';

export interface StampedEvent {
  wallMs: number;
  event: MigrationEvent;
}

export interface Phases {
  /** migrate() called (the 'setup' phase). */
  startWallMs: number;
  precopyStartWallMs: number | null;
  /** Pre-copy over: the coordinator pauses the source. */
  stopWallMs: number | null;
  /** The destination was told to run. */
  resumeWallMs: number | null;
  /** The destination answered that it runs: the end of the engine's downtime. */
  commitWallMs: number | null;
  endWallMs: number;
}

export function phasesOf(events: StampedEvent[], endWallMs: number): Phases {
  const first = (ph: string) => events.find((e) => e.event.type === 'phase' && e.event.phase === ph)?.wallMs ?? null;
  return {
    startWallMs: first('setup') ?? events[0]?.wallMs ?? endWallMs,
    precopyStartWallMs: first('precopy'),
    stopWallMs: first('stop'),
    resumeWallMs: first('resume'),
    commitWallMs: first('commit'),
    endWallMs,
  };
}

function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface PingOutage {
  /** Requests sent and answered over the whole run. */
  sent: number;
  answered: number;
  /** Median spacing of the requests as ping really sent them, ms (iputils sends every ~16 ms at -i 0.01). */
  spacingMs: number;
  /**
   * Largest gap between consecutive replies (by arrival) that spans the
   * switch-over, ms: ping's measure of the downtime. The last reply before
   * it came at most one request spacing before the pause began, and requests
   * the paused NIC queued are answered as soon as the guest runs again, so
   * it exceeds the pause by up to one spacing.
   */
  switchGapMs: number | null;
  /** When that gap began and ended (the replies around it). */
  switchGapFromWallMs: number | null;
  switchGapToWallMs: number | null;
  /** Requests without a reply sent within that gap. */
  switchLost: number;
  /** switchLost × spacingMs: the requests lost, as time. */
  lostMs: number;
  /** From the end of the engine's downtime (toWallMs) to the first reply to a request sent after it, ms: how soon the guest answered again on its new node. */
  firstReplyAfterMs: number | null;
  /** Largest gap between replies anywhere in the run, and where. */
  maxGapMs: number;
  maxGapAtWallMs: number | null;
  /** Longest run of consecutive unanswered requests anywhere. */
  longestLostRun: number;
}

/** Ping's view of the outage around [fromWallMs, toWallMs] (the stop-and-copy). */
export function pingOutage(records: PingRecord[], fromWallMs: number, toWallMs: number): PingOutage {
  const answered = records.filter((r) => !r.lost && r.replyWallMs !== null).sort((a, b) => a.replyWallMs! - b.replyWallMs!);
  const bySeq = records.filter((r) => !r.lost);
  const spacings: number[] = [];
  for (let i = 1; i < bySeq.length; i++) if (bySeq[i]!.seq === bySeq[i - 1]!.seq + 1) spacings.push(bySeq[i]!.sentWallMs - bySeq[i - 1]!.sentWallMs);
  const intervalMs = median(spacings);
  let maxGapMs = 0;
  let maxGapAt: number | null = null;
  let sw: { gap: number; from: number; to: number } | null = null;
  for (let i = 1; i < answered.length; i++) {
    const a = answered[i - 1]!.replyWallMs!;
    const b = answered[i]!.replyWallMs!;
    const gap = b - a;
    if (gap > maxGapMs) {
      maxGapMs = gap;
      maxGapAt = a;
    }
    // A gap spans the switch-over when it overlaps the stop-and-copy window.
    if (a <= toWallMs && b >= fromWallMs && (!sw || gap > sw.gap)) sw = { gap, from: a, to: b };
  }
  let longestLostRun = 0;
  let run = 0;
  for (const r of records) {
    run = r.lost ? run + 1 : 0;
    longestLostRun = Math.max(longestLostRun, run);
  }
  const switchLost = sw ? records.filter((r) => r.lost && r.sentWallMs > sw!.from - intervalMs && r.sentWallMs < sw!.to).length : 0;
  return {
    sent: records.length,
    answered: answered.length,
    spacingMs: intervalMs,
    switchGapMs: sw?.gap ?? null,
    switchGapFromWallMs: sw?.from ?? null,
    switchGapToWallMs: sw?.to ?? null,
    switchLost,
    lostMs: switchLost * intervalMs,
    firstReplyAfterMs: (() => {
      const r = answered.find((x) => x.sentWallMs >= toWallMs);
      return r ? r.replyWallMs! - toWallMs : null;
    })(),
    maxGapMs,
    maxGapAtWallMs: maxGapAt,
    longestLostRun,
  };
}

export interface IperfOutage {
  /** Datagrams per second the stream delivered around the switch-over when undisturbed (median of the neighbouring intervals). */
  baselinePps: number;
  /** Intervals counted as the switch-over window: those overlapping the stop-and-copy, and one on each side. */
  windowFromWallMs: number | null;
  windowToWallMs: number | null;
  expectedDatagrams: number;
  receivedDatagrams: number;
  /** (expected − received) / baseline rate: the time the stream was missing, ms. Resolution: one datagram. */
  deficitMs: number | null;
  /** Lowest interval throughput in the window, bit/s. */
  minBitsPerSec: number | null;
  /** Longest run of intervals with nothing received, and its length in ms. */
  zeroIntervals: number;
  zeroMs: number;
  /** Datagrams iperf counted lost (sequence gaps) and out of order, whole run. */
  lost: number;
  outOfOrder: number;
}

/**
 * iperf's view of the outage: how many datagrams the intervals around the
 * stop-and-copy are short of the stream's undisturbed rate. The guest's
 * sender does not make up for a pause (it restarts its schedule), so the
 * shortfall, over the rate, is how long the stream was missing.
 */
export function iperfOutage(intervals: IperfInterval[], datagramBytes: number, fromWallMs: number, toWallMs: number): IperfOutage {
  const iv = [...intervals].sort((a, b) => a.startWallMs - b.startWallMs);
  const overlapping = iv.map((x, i) => (x.startWallMs < toWallMs && x.endWallMs > fromWallMs ? i : -1)).filter((i) => i >= 0);
  const dg = (x: IperfInterval) => x.bytes / datagramBytes;
  const lost = iv.reduce((s, x) => s + x.lost, 0);
  const outOfOrder = iv.reduce((s, x) => s + x.outOfOrder, 0);
  let zeroIntervals = 0;
  let run = 0;
  for (const x of iv) {
    run = x.bytes === 0 ? run + 1 : 0;
    zeroIntervals = Math.max(zeroIntervals, run);
  }
  const zeroMs = zeroIntervals && iv.length ? zeroIntervals * (iv[0]!.endS - iv[0]!.startS) * 1000 : 0;
  if (!overlapping.length) {
    return { baselinePps: NaN, windowFromWallMs: null, windowToWallMs: null, expectedDatagrams: 0, receivedDatagrams: 0, deficitMs: null, minBitsPerSec: null, zeroIntervals, zeroMs, lost, outOfOrder };
  }
  const lo = Math.max(0, overlapping[0]! - 1);
  const hi = Math.min(iv.length - 1, overlapping.at(-1)! + 1);
  const win = iv.slice(lo, hi + 1);
  const around = [...iv.slice(Math.max(0, lo - 10), lo), ...iv.slice(hi + 1, hi + 11)];
  const baselinePps = median(around.map((x) => dg(x) / ((x.endS - x.startS) || 1)));
  const spanS = win.reduce((s, x) => s + (x.endS - x.startS), 0);
  const expected = baselinePps * spanS;
  const received = win.reduce((s, x) => s + dg(x), 0);
  return {
    baselinePps,
    windowFromWallMs: win[0]!.startWallMs,
    windowToWallMs: win.at(-1)!.endWallMs,
    expectedDatagrams: expected,
    receivedDatagrams: received,
    deficitMs: baselinePps > 0 ? (Math.max(0, expected - received) / baselinePps) * 1000 : null,
    minBitsPerSec: Math.min(...win.map((x) => x.bitsPerSec)),
    zeroIntervals,
    zeroMs,
    lost,
    outOfOrder,
  };
}

/** Mean throughput (bit/s) of the intervals wholly inside [from, to]. */
export function meanThroughput(intervals: IperfInterval[], fromWallMs: number, toWallMs: number): number | null {
  const inside = intervals.filter((x) => x.startWallMs >= fromWallMs && x.endWallMs <= toWallMs);
  if (!inside.length) return null;
  const bytes = inside.reduce((s, x) => s + x.bytes, 0);
  const secs = inside.reduce((s, x) => s + (x.endS - x.startS), 0);
  return (bytes * 8) / secs;
}

export interface PrecopyAgainstLink {
  precopyMs: number;
  /** Pages of the first pass that were not zero, as bytes. */
  nonZeroBytes: number;
  /** nonZeroBytes / link rate. */
  limitMs: number;
  /** precopyMs / limitMs. */
  ratio: number;
  /** Bytes put on the page stream during pre-copy (page headers and re-sent pages included). */
  wireBytes: number;
  /** wireBytes / link rate: what the link allowed for what was actually sent. */
  wireLimitMs: number;
  rounds: number;
  /** The first full pass alone: its streaming time, and that over limitMs. */
  firstPassMs: number;
  firstPassRatio: number;
  /** The stream's own rate over the whole pre-copy (wire bytes / streaming time), bytes/s. */
  streamBytesPerSec: number;
}

export function precopyAgainstLink(events: StampedEvent[], phases: Phases, linkBytesPerSec: number): PrecopyAgainstLink | null {
  const rounds = events.map((e) => e.event).filter((e): e is Extract<MigrationEvent, { type: 'round' }> => e.type === 'round');
  const first = rounds[0];
  if (!first || phases.precopyStartWallMs === null || phases.stopWallMs === null) return null;
  const nonZeroBytes = (first.pagesSent - first.zeroPages) * 4096;
  const wireBytes = rounds.reduce((s, r) => s + r.wireBytes, 0);
  const precopyMs = phases.stopWallMs - phases.precopyStartWallMs;
  const limitMs = (nonZeroBytes / linkBytesPerSec) * 1000;
  const streamMs = rounds.reduce((s, r) => s + r.roundMs, 0);
  return {
    precopyMs,
    nonZeroBytes,
    limitMs,
    ratio: precopyMs / limitMs,
    wireBytes,
    wireLimitMs: (wireBytes / linkBytesPerSec) * 1000,
    rounds: rounds.length,
    firstPassMs: first.roundMs,
    firstPassRatio: first.roundMs / limitMs,
    streamBytesPerSec: (wireBytes / Math.max(streamMs, 1)) * 1000,
  };
}
