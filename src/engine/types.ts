import type { BaremigError } from '../errors.js';

export type Phase = 'setup' | 'precopy' | 'stop' | 'final-copy' | 'devices' | 'vcpu' | 'verify' | 'resume' | 'commit' | 'rollback';

export interface MigrationOptions {
  /** Pause budget the convergence rule aims for, ms. */
  downtimeLimitMs: number;
  /** Cap on the agent-to-agent stream, bytes/s (a token bucket in the source agent). */
  bandwidth?: number;
  /** Pre-copy rounds at most (the first full pass counts as round 1). */
  maxRounds: number;
  /** When pre-copy stalls (dirty rate ≥ bandwidth, or no progress): raise the limit step by step, or abort. */
  onStall: 'raise' | 'abort';
  /** Each stall raises the limit by this factor… */
  limitStepFactor: number;
  /** …up to this, then aborts. */
  maxDowntimeLimitMs: number;
  /** Whole-migration time bound, ms (0 = none). */
  timeoutMs: number;
  signal?: AbortSignal;
  /**
   * When this fires (a drain's time is up with `--on-timeout force`), pre-copy
   * ends after the current round: the downtime limit goes to
   * `maxDowntimeLimitMs` and the guest switches over, whatever the estimate.
   */
  forceSignal?: AbortSignal;
}

export const DEFAULT_OPTIONS: MigrationOptions = {
  downtimeLimitMs: 300,
  maxRounds: 30,
  onStall: 'raise',
  limitStepFactor: 1.5,
  maxDowntimeLimitMs: 5000,
  timeoutMs: 0,
};

export interface RoundInfo {
  round: number;
  pagesSent: number;
  zeroPages: number;
  wireBytes: number;
  roundMs: number;
  /** Pages found dirty at the sync that ends this round (what the next round must send). */
  dirtyPages: number;
  dirtyRateBps: number;
  bandwidthBps: number;
  expectedDowntimeMs: number;
  downtimeLimitMs: number;
  /** 0..1, never goes backwards. */
  progress: number;
  totalBytesSent: number;
  elapsedMs: number;
}

export interface DeviceReport {
  kind: string;
  name: string;
  captureMs: number;
  restoreMs: number;
  programs: number;
  ops: number;
  extra?: Record<string, number>;
}

export type MigrationEvent =
  | { type: 'phase'; phase: Phase; elapsedMs: number; progress: number }
  | ({ type: 'round' } & RoundInfo)
  /** While a round streams: what has crossed so far (every ~250 ms). */
  | { type: 'stream'; round: number; pagesSent: number; wireBytes: number; rateBps: number; totalBytesSent: number; progress: number; elapsedMs: number }
  | { type: 'policy'; action: 'raise-limit' | 'abort' | 'switch-over'; reason: string; downtimeLimitMs: number; elapsedMs: number }
  | ({ type: 'device' } & DeviceReport)
  | { type: 'rollback'; fromPhase: Phase; reason: string; sourceRunning: boolean; elapsedMs: number }
  | { type: 'warning'; message: string; elapsedMs: number };

export interface MigrationSummary {
  ok: boolean;
  source: string;
  destination: string;
  totalMs: number;
  /** Source pause → destination running, as the coordinator measured it. */
  downtimeMs: number;
  /** Largest gap the guest itself saw (its heartbeat), where the guest exposes one. */
  guestDowntimeMs: number | null;
  rounds: number;
  bytesSent: number;
  pagesSent: number;
  zeroPages: number;
  throughputMBps: number;
  downtimeLimitMs: number;
  expectedDowntimeMs: number;
  verified: boolean;
  guestContinued: boolean | null;
  devices: DeviceReport[];
  downtimeBreakdownMs: Record<string, number>;
  error?: { code: string; message: string; phase?: Phase; sourceRunning?: boolean };
}

export type MigrationFailure = BaremigError & { phase?: Phase };
