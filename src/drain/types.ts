import type { MigrationEvent, MigrationOptions, MigrationSummary } from '../engine/types.js';
import type { NodeStatus } from '../cli/commands/nodes.js';

/**
 * Shared vocabulary of the drain automation: what a drain (or a return) is
 * asked to do, the plan it follows, what it records and what it reports.
 *
 * A guest has no identity of its own that the agents could tell us, so a
 * guest is named after the node it ran on when the drain planned it:
 * `guest@node17`. The journal follows it from there.
 */

export type JobKind = 'drain' | 'return';

/** What to do with migrations still running when the drain's time is up. */
export type TimeoutAction = 'abort' | 'force';

export interface DrainOptions {
  /** Migrations in flight at most, for the whole drain. */
  parallel: number;
  /** Migrations one node's migration link takes part in at most at once. */
  perLink: number;
  /** Bound on the whole drain, ms (0 = none). */
  timeoutMs: number;
  onTimeout: TimeoutAction;
  /** Further attempts after a failed one. */
  retries: number;
  /** First retry delay, ms; doubles per attempt up to `retryMaxDelayMs`. */
  retryDelayMs: number;
  retryMaxDelayMs: number;
  /** Destinations allowed (`--to`), else any node. */
  to?: string[];
  /** Destinations restricted to this pool (`--pool`). */
  pool?: string;
  hooks: { pre?: string; post?: string; end?: string; timeoutMs: number };
  /** Passed to each migration (flags of `migrate`). */
  migration: Partial<Omit<MigrationOptions, 'signal' | 'forceSignal'>>;
}

export const DEFAULT_DRAIN_OPTIONS: DrainOptions = {
  parallel: 2,
  perLink: 2,
  timeoutMs: 0,
  onTimeout: 'abort',
  retries: 2,
  retryDelayMs: 1000,
  retryMaxDelayMs: 30_000,
  hooks: { timeoutMs: 120_000 },
  migration: {},
};

/** One step of a plan: which guest goes where, in which wave. */
export interface PlanItem {
  /** Position in the order migrations are started (1-based). */
  order: number;
  guest: string;
  source: string;
  /** null: no node can take the guest; `reason` says why. */
  destination: string | null;
  /** 1-based; null when the guest has no destination. */
  wave: number | null;
  ramBytes: number;
  devices: string[];
  reason?: string;
}

export interface Plan {
  items: PlanItem[];
  /** Nodes named for draining that run no guest (nothing to move). */
  empty: string[];
}

/** How a guest ended up, per guest, in the report. */
export type GuestOutcome = 'completed' | 'failed' | 'skipped' | 'not-started' | 'uncertain';

export interface GuestReport {
  guest: string;
  /** Node the guest ran on when the job planned it. */
  origin: string;
  /** Where the guest runs now (as confirmed with the agents), null if unknown. */
  location: string | null;
  destination: string | null;
  outcome: GuestOutcome;
  attempts: number;
  code?: string;
  reason?: string;
  totalMs?: number;
  downtimeMs?: number;
  guestDowntimeMs?: number | null;
  verified?: boolean;
  guestContinued?: boolean | null;
  /** Found finished on the agents after a coordinator crash, rather than seen finishing. */
  reconciled?: boolean;
}

export interface JobReport {
  ok: boolean;
  kind: JobKind;
  id: string;
  journal: string;
  dryRun: boolean;
  nodes: string[];
  guests: GuestReport[];
  counts: Record<GuestOutcome, number>;
  elapsedMs: number;
  timedOut: boolean;
  plan: PlanItem[];
}

/**
 * What a drain tells its observer (terminal view, NDJSON, tests). `ts` is
 * wall-clock ms (Date.now()), `mono` performance.now() of this process.
 */
export type DrainEventBody =
  | { event: 'plan'; kind: JobKind; id: string | null; dryRun: boolean; items: PlanItem[]; empty: string[] }
  | { event: 'cordon'; nodes: string[] }
  | { event: 'uncordon'; nodes: string[] }
  | { event: 'resume'; id: string; pending: string[] }
  | { event: 'reconciled'; guest: string; found: string | null; action: string; detail: string }
  | { event: 'hook'; hook: 'pre' | 'post' | 'end'; guest?: string; ok: boolean; exitCode: number | null; output: string; ms: number }
  | { event: 'started'; guest: string; source: string; destination: string; attempt: number }
  | { event: 'migration'; guest: string; attempt: number; e: MigrationEvent }
  | { event: 'retry'; guest: string; attempt: number; code: string; reason: string; delayMs: number; destination: string; destinationFault: boolean }
  | { event: 'finished'; guest: string; source: string; destination: string; attempt: number; ok: boolean; code?: string; reason?: string }
  | ({ event: 'outcome' } & GuestReport)
  | { event: 'timeout'; action: TimeoutAction; inFlight: string[] }
  | { event: 'warning'; message: string };

export type DrainEvent = DrainEventBody & { ts: number; mono: number };

/** What the runner needs from the cluster; the real one talks to agents, tests may fake it. */
export interface ClusterOps {
  /** What each node's agent says (all nodes of the nodes file, or those named); an unreachable node is reported, not thrown. */
  statuses(nodes?: string[]): Promise<NodeStatus[]>;
  migrate(src: string, dst: string, options: Partial<MigrationOptions>, onEvent: (e: MigrationEvent) => void): Promise<MigrationSummary>;
  /** Resume the paused guest on `node` (only when its migration's destination never ran). */
  resumeGuest(node: string): Promise<void>;
  /** Release the paused copy on `node` of a guest that runs elsewhere now. */
  releaseGuest(node: string): Promise<void>;
}
