import { closeSync, existsSync, fsyncSync, openSync, readFileSync, readdirSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BaremigError } from '../errors.js';
import { ensureStateDir, fsyncDir, liveOwner } from './stateDir.js';
import type { DrainOptions, GuestOutcome, JobKind, PlanItem, TimeoutAction } from './types.js';

/**
 * The drain journal: one append-only JSON-lines file per job (drain or
 * return) in the drain state directory. Every decision and outcome is one
 * line, written and fsync'd before the job acts on it, so that a job
 * interrupted by a crash of its coordinator can be resumed: replaying the
 * lines tells which guests are done, which are not, and which migration was
 * in flight (its outcome then comes from asking the agents, see reconcile).
 */

export type JournalBody =
  | { type: 'start'; kind: JobKind; id: string; nodes: string[]; options: DrainOptions; nodesFile: string; pid: number }
  | { type: 'cordon'; nodes: string[] }
  | { type: 'uncordon'; nodes: string[] }
  | { type: 'plan'; items: PlanItem[]; empty: string[] }
  | { type: 'resume'; pid: number }
  | { type: 'hook'; hook: 'pre' | 'post' | 'end'; guest?: string; ok: boolean; exitCode: number | null; output: string }
  | { type: 'started'; guest: string; source: string; destination: string; attempt: number }
  | { type: 'retry'; guest: string; attempt: number; code: string; reason: string; delayMs: number; destination: string; destinationFault: boolean }
  | { type: 'completed'; guest: string; source: string; destination: string; attempt: number; totalMs?: number; downtimeMs?: number; guestDowntimeMs?: number | null; verified?: boolean; guestContinued?: boolean | null; reconciled?: boolean }
  | { type: 'failed'; guest: string; source: string; attempt: number; outcome: Exclude<GuestOutcome, 'completed'>; code: string; reason: string; location: string | null }
  | { type: 'reconciled'; guest: string; source: string; destination: string; found: string | null; action: string; detail: string }
  | { type: 'timeout'; action: TimeoutAction; inFlight: string[] }
  | { type: 'end'; ok: boolean; counts: Record<GuestOutcome, number>; interrupted?: string };

export type JournalRecord = JournalBody & { seq: number; ts: number };

export class Journal {
  private seq: number;
  private constructor(
    readonly path: string,
    private fd: number | null,
    lastSeq: number,
  ) {
    this.seq = lastSeq;
  }

  static newId(kind: JobKind, now = new Date()): string {
    return `${kind}-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
  }

  static pathFor(stateDir: string, id: string): string {
    return join(stateDir, `${id}.jsonl`);
  }

  /** A new journal; fails if the file exists. */
  static create(stateDir: string, id: string): Journal {
    ensureStateDir(stateDir);
    const path = Journal.pathFor(stateDir, id);
    const fd = openSync(path, 'wx', 0o600);
    fsyncDir(stateDir);
    return new Journal(path, fd, 0);
  }

  /** An existing journal, to append to (resume). */
  static reopen(path: string): Journal {
    const recs = readJournal(path);
    return new Journal(path, openSync(path, 'a', 0o600), recs.at(-1)?.seq ?? 0);
  }

  /** Appends one record and makes it durable before returning. */
  append(body: JournalBody): JournalRecord {
    if (this.fd === null) throw new BaremigError('INTERNAL', `journal ${this.path} is closed`);
    const rec = { ...body, seq: ++this.seq, ts: Date.now() } as JournalRecord;
    writeSync(this.fd, `${JSON.stringify(rec)}\n`);
    fsyncSync(this.fd);
    return rec;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/**
 * Reads a journal. A last line cut short by a crash mid-write is ignored
 * (it was never fsync'd as a whole, so the job never acted on it); a bad
 * line anywhere else means the file was damaged, and is an error.
 */
export function readJournal(path: string): JournalRecord[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new BaremigError('STATE', `cannot read drain journal ${path}: ${(e as Error).message}`);
  }
  const lines = text.split('\n');
  const out: JournalRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (!l.trim()) continue;
    try {
      out.push(JSON.parse(l) as JournalRecord);
    } catch {
      const last = lines.slice(i + 1).every((x) => !x.trim());
      if (last) break;
      throw new BaremigError('STATE', `drain journal ${path}:${i + 1} is damaged (not JSON); it is the record of what went where: repair it by hand`);
    }
  }
  return out;
}

export type GuestStatus = 'pending' | 'in-flight' | GuestOutcome;

export interface GuestState {
  guest: string;
  /** The node the guest ran on when planned. */
  origin: string;
  item: PlanItem;
  status: GuestStatus;
  /** Where it runs, as last confirmed (null: unknown). */
  location: string | null;
  /** Destination of the next (or in-flight) attempt. */
  destination: string | null;
  attempts: number;
  tried: string[];
  /** Destinations that failed this guest. */
  faulty: string[];
  inflight?: { source: string; destination: string; attempt: number };
  preHookOk: boolean;
  postHookDone: boolean;
  code?: string;
  reason?: string;
  completed?: Extract<JournalRecord, { type: 'completed' }>;
}

export interface JobState {
  id: string;
  kind: JobKind;
  path: string;
  start: Extract<JournalRecord, { type: 'start' }>;
  plan: Extract<JournalRecord, { type: 'plan' }> | null;
  guests: Map<string, GuestState>;
  end: Extract<JournalRecord, { type: 'end' }> | null;
  resumes: number;
  startedAt: number;
}

/** Replays a journal into the state of its job. Pure. */
export function foldJournal(path: string, recs: JournalRecord[]): JobState {
  const start = recs.find((r) => r.type === 'start') as JobState['start'] | undefined;
  if (!start) throw new BaremigError('STATE', `drain journal ${path} has no start record`);
  const s: JobState = { id: start.id, kind: start.kind, path, start, plan: null, guests: new Map(), end: null, resumes: 0, startedAt: start.ts };
  for (const r of recs) {
    const g = 'guest' in r && r.guest !== undefined ? s.guests.get(r.guest) : undefined;
    switch (r.type) {
      case 'plan':
        s.plan = r;
        for (const it of r.items) {
          s.guests.set(it.guest, { guest: it.guest, origin: it.source, item: it, status: 'pending', location: it.source, destination: it.destination, attempts: 0, tried: [], faulty: [], preHookOk: false, postHookDone: false, ...(it.reason ? { reason: it.reason } : {}) });
        }
        break;
      case 'resume':
        s.resumes++;
        s.end = null;
        break;
      case 'hook':
        if (g && r.hook === 'pre' && r.ok) g.preHookOk = true;
        if (g && r.hook === 'post') g.postHookDone = true;
        break;
      case 'started':
        if (!g) break;
        g.status = 'in-flight';
        g.attempts = Math.max(g.attempts, r.attempt);
        g.destination = r.destination;
        g.inflight = { source: r.source, destination: r.destination, attempt: r.attempt };
        if (!g.tried.includes(r.destination)) g.tried.push(r.destination);
        break;
      case 'retry':
        if (!g) break;
        if (r.destinationFault && g.inflight && !g.faulty.includes(g.inflight.destination)) g.faulty.push(g.inflight.destination);
        else if (r.destinationFault && g.destination && !g.faulty.includes(g.destination)) g.faulty.push(g.destination);
        g.status = 'pending';
        delete g.inflight;
        g.destination = r.destination;
        g.code = r.code;
        g.reason = r.reason;
        break;
      case 'reconciled':
        if (!g) break;
        delete g.inflight;
        g.location = r.found;
        if (r.found === r.source) g.status = 'pending';
        break;
      case 'completed':
        if (!g) break;
        g.status = 'completed';
        g.location = r.destination;
        g.destination = r.destination;
        g.attempts = Math.max(g.attempts, r.attempt);
        delete g.inflight;
        delete g.code;
        delete g.reason;
        g.completed = r;
        break;
      case 'failed':
        if (!g) break;
        g.status = r.outcome;
        g.location = r.location;
        g.code = r.code;
        g.reason = r.reason;
        // An uncertain outcome keeps its in-flight migration: a resume asks the agents again.
        if (r.outcome !== 'uncertain') delete g.inflight;
        break;
      case 'end':
        s.end = r;
        break;
      default:
        break;
    }
  }
  return s;
}

export function loadJob(path: string): JobState {
  return foldJournal(path, readJournal(path));
}

export function ownerFile(journalPath: string): string {
  return journalPath.replace(/\.jsonl$/, '.owner');
}

export interface JobInfo {
  path: string;
  state: JobState;
  /** The coordinator running it now, if alive. */
  owner: { pid: number } | null;
  /** Not all guests completed (or never ended). */
  unfinished: boolean;
}

/** Every job in the state directory, oldest first. */
export function listJobs(stateDir: string): JobInfo[] {
  if (!existsSync(stateDir)) return [];
  const out: JobInfo[] = [];
  for (const f of readdirSync(stateDir).filter((x) => x.endsWith('.jsonl')).sort()) {
    const path = join(stateDir, f);
    const recs = readJournal(path);
    if (!recs.some((r) => r.type === 'start')) continue; // created, crashed before its first line
    const state = foldJournal(path, recs);
    const owner = liveOwner(ownerFile(path));
    const unfinished = state.end === null || [...state.guests.values()].some((g) => g.status !== 'completed');
    out.push({ path, state, owner: owner ? { pid: owner.pid } : null, unfinished });
  }
  return out.sort((a, b) => a.state.startedAt - b.state.startedAt || a.path.localeCompare(b.path));
}

/**
 * Where the guests drained from `home` are now, by following the moves
 * every job completed: from the most recent drain that moved a guest off
 * `home`, then through any later move whose source was its location.
 */
export function locateDrained(jobs: JobInfo[], home: string): Array<{ guest: string; location: string; drainId: string }> {
  const moves: Array<{ ts: number; source: string; destination: string }> = [];
  for (const j of jobs) for (const g of j.state.guests.values()) if (g.completed) moves.push({ ts: g.completed.ts, source: g.completed.source, destination: g.completed.destination });
  moves.sort((a, b) => a.ts - b.ts);
  const drains = jobs.filter((j) => j.state.kind === 'drain');
  for (let i = drains.length - 1; i >= 0; i--) {
    const j = drains[i]!;
    const out: Array<{ guest: string; location: string; drainId: string }> = [];
    for (const g of j.state.guests.values()) {
      if (g.origin !== home || !g.completed) continue;
      const since = g.completed.ts;
      let loc = g.completed.destination;
      for (const m of moves) if (m.ts > since && m.source === loc) loc = m.destination;
      out.push({ guest: g.guest, location: loc, drainId: j.state.id });
    }
    if (out.length) return out;
  }
  return [];
}
