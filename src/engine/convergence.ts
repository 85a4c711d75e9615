/**
 * When to stop pre-copy: pure functions, tested on their own.
 *
 * Expected downtime = bytes still to move at pause / bandwidth
 *                   + device restore time + digest of what changed
 *                   + the round trips of the stop sequence.
 * Unlike QEMU's estimate, the device and verification parts are counted.
 */
export const PAGE_WIRE_BYTES = 4096 + 8;
/** SHA-256 of a page at ~1 GB/s plus bookkeeping, on both sides in parallel. */
export const DIGEST_US_PER_PAGE = 5;
/** Sequential coordinator ↔ agent round trips between pause and resume. */
export const STOP_ROUND_TRIPS = 10;

export interface DowntimeInputs {
  dirtyPages: number;
  stateBytes: number;
  bandwidthBps: number;
  deviceRestoreMs: number;
  rttMs: number;
}

export function expectedDowntimeMs(x: DowntimeInputs): number {
  const bw = Math.max(x.bandwidthBps, 1);
  const transfer = ((x.dirtyPages * PAGE_WIRE_BYTES + x.stateBytes) / bw) * 1000;
  const digest = (x.dirtyPages * DIGEST_US_PER_PAGE) / 1000;
  return transfer + digest + x.deviceRestoreMs + STOP_ROUND_TRIPS * x.rttMs;
}

export interface ConvergenceState {
  round: number;
  maxRounds: number;
  expectedDowntimeMs: number;
  downtimeLimitMs: number;
  dirtyRateBps: number;
  bandwidthBps: number;
  /** Dirty pages at the end of the recent rounds, newest last. */
  dirtyHistory: number[];
  onStall: 'raise' | 'abort';
  limitStepFactor: number;
  maxDowntimeLimitMs: number;
}

export type Decision =
  | { action: 'stop' }
  | { action: 'continue' }
  | { action: 'raise-limit'; newLimitMs: number; reason: string }
  | { action: 'abort'; reason: string };

/**
 * Pre-copy stalls when the guest dirties about as fast as the link moves, or
 * when two rounds in a row shrink the dirty set by less than 10 %. (The
 * measured dirty rate saturates at working set / round time, so a guest that
 * re-dirties its whole working set every round shows up as ≈ the bandwidth,
 * not above it: hence 95 %, and the shrink rule.)
 */
export function isStalled(s: Pick<ConvergenceState, 'dirtyRateBps' | 'bandwidthBps' | 'dirtyHistory'>): string | null {
  if (s.dirtyRateBps >= s.bandwidthBps * 0.95) {
    return `guest dirties ${(s.dirtyRateBps / 1e6).toFixed(1)} MB/s, the link moves ${(s.bandwidthBps / 1e6).toFixed(1)} MB/s`;
  }
  const h = s.dirtyHistory;
  if (h.length >= 3) {
    const [a, b, c] = h.slice(-3) as [number, number, number];
    if (b >= a * 0.9 && c >= b * 0.9) return `dirty set stays at ~${c} pages for 2 rounds`;
  }
  return null;
}

export function decide(s: ConvergenceState): Decision {
  if (s.expectedDowntimeMs <= s.downtimeLimitMs) return { action: 'stop' };
  const stall = isStalled(s) ?? (s.round >= s.maxRounds ? `reached ${s.maxRounds} rounds` : null);
  if (!stall) return { action: 'continue' };
  if (s.onStall === 'abort') return { action: 'abort', reason: `pre-copy does not converge: ${stall}` };
  // Raise step by step; at the round cap go straight to what is needed.
  const wanted = s.round >= s.maxRounds ? s.expectedDowntimeMs : s.downtimeLimitMs * s.limitStepFactor;
  const newLimitMs = Math.min(Math.max(wanted, s.downtimeLimitMs * s.limitStepFactor), s.maxDowntimeLimitMs);
  if (newLimitMs <= s.downtimeLimitMs || (s.round >= s.maxRounds && newLimitMs < s.expectedDowntimeMs)) {
    return { action: 'abort', reason: `pre-copy does not converge (${stall}) and the downtime limit is already at its maximum ${s.maxDowntimeLimitMs} ms` };
  }
  return { action: 'raise-limit', newLimitMs, reason: stall };
}

/** A progress figure that never runs backwards, below 1 until the guest runs on the destination. */
export class Progress {
  private value = 0;
  update(sentBytes: number, remainingBytes: number): number {
    const p = sentBytes + remainingBytes > 0 ? sentBytes / (sentBytes + remainingBytes) : 0;
    this.value = Math.max(this.value, Math.min(p, 0.99));
    return this.value;
  }
  bump(to: number): number {
    this.value = Math.max(this.value, Math.min(to, 1));
    return this.value;
  }
  get current(): number {
    return this.value;
  }
}
