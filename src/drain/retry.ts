/**
 * Retry policy of a drain, pure: how long to wait before the next attempt
 * (capped exponential backoff) and whether a failure is worth another
 * attempt, on the same destination or on another one.
 */

/**
 * Delay before attempt `failed + 1`, after `failed` failed attempts (≥ 1):
 * base · 2^(failed−1), capped. `jitter` (0..1, e.g. Math.random) spreads
 * retries of many guests over [d/2, d]; without it the delay is exact.
 */
export function backoffMs(failed: number, baseMs: number, capMs: number, jitter?: () => number): number {
  const n = Math.max(1, Math.floor(failed));
  const d = Math.min(capMs, baseMs * 2 ** Math.min(n - 1, 52));
  if (!jitter) return d;
  return d / 2 + (d / 2) * Math.min(Math.max(jitter(), 0), 1);
}

/** What the runner found out about a failed attempt. */
export interface FailureFacts {
  code: string;
  message: string;
  /** Is the guest running on its source now (asked after the failure)? */
  sourceRunning: boolean;
  /** The destination, asked after the failure. */
  destination: { reachable: boolean; idle: boolean; cordoned: boolean };
}

export type Verdict = { retry: false; why: string } | { retry: true; destinationFault: boolean; why: string };

/** Failures that another attempt cannot fix: the operator must act. */
const FINAL = new Set(['USAGE', 'INVENTORY', 'UNKNOWN_NODE', 'AUTH', 'VERSION', 'CANCELLED', 'UNCERTAIN']);
/** Failures that say the destination cannot take the guest. */
const DESTINATION = new Set(['CORDONED', 'BAD_REQUEST', 'DEVICE', 'VERIFY']);

export function classifyFailure(f: FailureFacts): Verdict {
  if (f.code === 'UNCERTAIN') return { retry: false, why: 'the destination may be running the guest: not touching it' };
  if (FINAL.has(f.code)) return { retry: false, why: `${f.code} cannot be fixed by trying again` };
  if (!f.sourceRunning) return { retry: false, why: 'the guest is not running on its source any more' };
  const d = f.destination;
  if (!d.reachable) return { retry: true, destinationFault: true, why: 'the destination is unreachable' };
  if (d.cordoned) return { retry: true, destinationFault: true, why: 'the destination was cordoned' };
  if (!d.idle) return { retry: true, destinationFault: true, why: 'the destination is not idle' };
  if (DESTINATION.has(f.code)) return { retry: true, destinationFault: true, why: `the destination refused or failed (${f.code})` };
  return { retry: true, destinationFault: false, why: `${f.code} may pass on another attempt` };
}
