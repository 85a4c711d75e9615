import PQueue from 'p-queue';
import type { NodeStatus } from '../cli/commands/nodes.js';
import type { MigrationSummary } from '../engine/types.js';
import type { Inventory } from '../inventory/nodesFile.js';
import { cordonedSet } from './cordon.js';
import { runHook } from './hooks.js';
import type { GuestState, Journal, JobState } from './journal.js';
import { LinkBudget } from './limiter.js';
import { type NodeView, chooseDestination, linkKeys, needsOf, nodeViews } from './plan.js';
import { type Reconciliation, type Seen, reconcile } from './reconcile.js';
import { backoffMs, classifyFailure } from './retry.js';
import type { ClusterOps, DrainEventBody, DrainOptions, GuestOutcome, GuestReport, JobReport } from './types.js';

/**
 * Runs the migrations of a job (a drain, or a return) that its journal
 * says are not done: under the concurrency budget (a p-queue of `parallel`
 * slots, and at most `perLink` migrations per migration link), with retries
 * and capped exponential backoff, hooks, the job's time limit and its
 * per-migration timeout action. Every decision is journaled before it is
 * acted on; every outcome is confirmed with the agents before it is
 * reported.
 */
export interface RunContext {
  inv: Inventory;
  stateDir: string;
  ops: ClusterOps;
  journal: Journal;
  job: JobState;
  options: DrainOptions;
  emit: (e: DrainEventBody) => void;
  /** Operator cancel (Ctrl-C): in-flight migrations are cancelled, nothing new starts. */
  signal?: AbortSignal;
  /** Tests: the clock of backoff sleeps. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Resumed or first run: a first run follows its plan exactly. */
  resumed: boolean;
  /** Guests not to attempt in this run: reported as the journal has them. */
  settled?: Set<string>;
}

const defaultSleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

export function seenOf(s: NodeStatus | undefined): Seen {
  return s?.reachable && s.guest ? { reachable: true, guest: s.guest as never } : { reachable: false };
}

/** Ask the agents where a guest is, wait out transient states, apply the one safe action, and journal it. */
export async function reconcileGuest(ctx: Pick<RunContext, 'ops' | 'journal' | 'emit'>, g: GuestState, source: string, destination: string, polls = 20, pollMs = 250): Promise<Reconciliation> {
  let r: Reconciliation | null = null;
  for (let i = 0; i < polls; i++) {
    const st = await ctx.ops.statuses([source, destination]);
    const by = new Map(st.map((s) => [s.name, s]));
    r = reconcile(source, destination, seenOf(by.get(source)), seenOf(by.get(destination)), i === polls - 1);
    if (r.action !== 'wait') break;
    await new Promise((res) => setTimeout(res, pollMs));
  }
  r = r!;
  let detail = r.detail;
  let found = r.found;
  let certain = r.certain;
  try {
    if (r.action === 'resume-source') await ctx.ops.resumeGuest(source);
    if (r.action === 'release-source') await ctx.ops.releaseGuest(source);
  } catch (e) {
    if (r.action === 'resume-source') {
      found = null;
      certain = false;
    }
    detail = `${detail}; that failed: ${(e as Error).message}`;
  }
  ctx.journal.append({ type: 'reconciled', guest: g.guest, source, destination, found, action: r.action, detail });
  ctx.emit({ event: 'reconciled', guest: g.guest, found, action: r.action, detail });
  return { ...r, found, certain, detail };
}

type AttemptResult = { kind: 'not-started' } | { kind: 'skipped'; reason: string } | { kind: 'ran'; summary: MigrationSummary; source: string; destination: string; attempt: number };

export async function executeJob(ctx: RunContext): Promise<JobReport> {
  const t0 = performance.now();
  const o = ctx.options;
  const { job, journal } = ctx;
  const queue = new PQueue({ concurrency: o.parallel });
  const links = new LinkBudget(o.perLink);
  const stop = new AbortController(); // nothing new starts; sleeps end
  const cancelAll = new AbortController(); // in-flight migrations cancel (abort action, or the operator)
  const force = new AbortController(); // in-flight migrations switch over (force action)
  let timedOut = false;
  let cancelled = false;
  const sleep = ctx.sleep ?? defaultSleep;
  const guests = [...job.guests.values()].sort((a, b) => a.item.order - b.item.order);
  const inFlight = new Set<string>();
  const reserved = new Set<string>();
  const excluded = new Set<string>();
  for (const g of guests) {
    for (const f of g.faulty) excluded.add(f);
    if (g.status !== 'completed' && g.destination) reserved.add(g.destination);
  }

  const onCancel = () => {
    cancelled = true;
    stop.abort();
    cancelAll.abort();
  };
  if (ctx.signal?.aborted) onCancel();
  ctx.signal?.addEventListener('abort', onCancel, { once: true });
  let timer: NodeJS.Timeout | null = null;
  if (o.timeoutMs > 0) {
    timer = setTimeout(() => {
      timedOut = true;
      const list = [...inFlight];
      journal.append({ type: 'timeout', action: o.onTimeout, inFlight: list });
      ctx.emit({ event: 'timeout', action: o.onTimeout, inFlight: list });
      stop.abort();
      if (o.onTimeout === 'abort') cancelAll.abort();
      else force.abort();
    }, o.timeoutMs);
  }

  const reports = new Map<string, GuestReport>();
  const finish = (g: GuestState, r: Omit<GuestReport, 'guest' | 'origin'>) => {
    const rep: GuestReport = { guest: g.guest, origin: g.origin, ...r };
    reports.set(g.guest, rep);
    ctx.emit({ event: 'outcome', ...rep });
    return rep;
  };
  const fail = (g: GuestState, outcome: Exclude<GuestOutcome, 'completed'>, code: string, reason: string, location: string | null, attempt: number) => {
    g.status = outcome;
    g.location = location;
    journal.append({ type: 'failed', guest: g.guest, source: g.origin, attempt, outcome, code, reason, location });
    return finish(g, { location, destination: g.destination, outcome, attempts: attempt, code, reason });
  };
  const complete = (g: GuestState, s: MigrationSummary | null, source: string, destination: string, attempt: number, reconciled: boolean) => {
    g.status = 'completed';
    g.location = destination;
    const m = s ? { totalMs: s.totalMs, downtimeMs: s.downtimeMs, guestDowntimeMs: s.guestDowntimeMs, verified: s.verified, guestContinued: s.guestContinued } : {};
    journal.append({ type: 'completed', guest: g.guest, source, destination, attempt, ...m, ...(reconciled ? { reconciled: true } : {}) });
    return finish(g, { location: destination, destination, outcome: 'completed', attempts: attempt, ...m, ...(reconciled ? { reconciled: true } : {}) });
  };
  const stopReason = () => (cancelled ? { code: 'CANCELLED', reason: 'the drain was cancelled' } : { code: 'TIMEOUT', reason: `the drain's time limit of ${o.timeoutMs} ms was reached` });

  const views = async (): Promise<NodeView[]> => nodeViews(ctx.inv, await ctx.ops.statuses(), cordonedSet(ctx.stateDir));

  const hook = async (which: 'pre' | 'post', g: GuestState, source: string, destination: string | null, result?: string) => {
    const cmd = o.hooks[which];
    if (!cmd) return { ok: true, output: '' };
    const r = await runHook(cmd, { hook: which, job: job.id, guest: g.guest, source, ...(destination ? { destination } : {}), ...(result ? { result } : {}), attempts: g.attempts }, o.hooks.timeoutMs);
    journal.append({ type: 'hook', hook: which, guest: g.guest, ok: r.ok, exitCode: r.exitCode, output: r.output });
    ctx.emit({ event: 'hook', hook: which, guest: g.guest, ok: r.ok, exitCode: r.exitCode, output: r.output, ms: r.ms });
    return r;
  };

  async function runGuest(g: GuestState): Promise<GuestReport> {
    if (g.status === 'completed') {
      const c = g.completed;
      if (!g.postHookDone && o.hooks.post) await hook('post', g, c?.source ?? g.origin, g.destination, 'completed');
      return finish(g, { location: g.location, destination: g.destination, outcome: 'completed', attempts: g.attempts, ...(c ? { totalMs: c.totalMs, downtimeMs: c.downtimeMs, guestDowntimeMs: c.guestDowntimeMs, verified: c.verified, guestContinued: c.guestContinued, ...(c.reconciled ? { reconciled: true } : {}) } : {}) });
    }
    if (ctx.settled?.has(g.guest)) {
      const outcome: Exclude<GuestOutcome, 'completed'> = g.status === 'pending' || g.status === 'in-flight' ? 'uncertain' : g.status;
      return finish(g, { location: g.location, destination: g.destination, outcome, attempts: g.attempts, ...(g.code ? { code: g.code } : {}), ...(g.reason ? { reason: g.reason } : {}) });
    }
    const source = g.location ?? g.origin;
    let failures = 0;
    let last: { code: string; reason: string } | null = null;
    for (;;) {
      if (g.destination === null) {
        // The plan found no destination; on a resumed run, look again.
        let reason = g.reason ?? g.item.reason ?? 'no destination';
        if (ctx.resumed && job.kind === 'drain' && g.location === g.origin) {
          const v = await views();
          const src = v.find((n) => n.name === source);
          if (src && src.reachable && src.guest === 'running') {
            const c = chooseDestination(needsOf(src, g.guest), v, { ...(o.to ? { to: o.to } : {}), ...(o.pool !== undefined ? { pool: o.pool } : {}), reserved, excluded });
            if (c.destination !== null) {
              g.destination = c.destination;
              reserved.add(c.destination);
              journal.append({ type: 'retry', guest: g.guest, attempt: g.attempts, code: 'NO_DESTINATION', reason: 'a destination is free now', delayMs: 0, destination: c.destination, destinationFault: false });
              continue;
            }
            reason = c.reason;
          }
        }
        return fail(g, 'failed', last?.code ?? 'NO_DESTINATION', last ? `${last.reason}; ${reason}` : reason, source, g.attempts);
      }
      if (stop.signal.aborted) {
        const s = stopReason();
        return last ? fail(g, 'failed', last.code, `${last.reason}; no further attempt: ${s.reason}`, source, g.attempts) : fail(g, 'not-started', s.code, s.reason, source, g.attempts);
      }
      const destination = g.destination;
      const res: AttemptResult = await queue.add(async (): Promise<AttemptResult> => {
        if (stop.signal.aborted) return { kind: 'not-started' };
        const release = await links.acquire(linkKeys(source, destination));
        try {
          if (stop.signal.aborted) return { kind: 'not-started' };
          if (!g.preHookOk && o.hooks.pre) {
            const h = await hook('pre', g, source, destination);
            if (!h.ok) return { kind: 'skipped', reason: `pre hook failed${h.output ? `: ${h.output.split('\n').filter(Boolean).at(-1)}` : ''}` };
            g.preHookOk = true;
          }
          if (stop.signal.aborted) return { kind: 'not-started' };
          const attempt = g.attempts + 1;
          g.attempts = attempt;
          g.status = 'in-flight';
          g.inflight = { source, destination, attempt };
          journal.append({ type: 'started', guest: g.guest, source, destination, attempt });
          inFlight.add(g.guest);
          ctx.emit({ event: 'started', guest: g.guest, source, destination, attempt });
          let summary: MigrationSummary;
          try {
            summary = await ctx.ops.migrate(source, destination, { ...o.migration, signal: cancelAll.signal, forceSignal: force.signal }, (e) => ctx.emit({ event: 'migration', guest: g.guest, attempt, e }));
          } catch (e) {
            // Refused before it began (unknown node, cordoned destination, agent unreachable at connect).
            const err = e as { code?: string; message?: string };
            summary = failedSummary(source, destination, err.code ?? 'INTERNAL', err.message ?? String(e));
          } finally {
            inFlight.delete(g.guest);
          }
          ctx.emit({ event: 'finished', guest: g.guest, source, destination, attempt, ok: summary.ok, ...(summary.error ? { code: summary.error.code, reason: summary.error.message } : {}) });
          return { kind: 'ran', summary, source, destination, attempt };
        } finally {
          release();
        }
      });
      if (res.kind === 'not-started') continue; // the stop check above reports it
      if (res.kind === 'skipped') {
        const r = fail(g, 'skipped', 'HOOK', res.reason, source, g.attempts);
        await hook('post', g, source, destination, 'skipped');
        return r;
      }
      const { summary, attempt } = res;
      delete g.inflight;
      const st = new Map((await ctx.ops.statuses([source, destination])).map((s) => [s.name, s]));
      const srcSeen = seenOf(st.get(source));
      const dstSeen = seenOf(st.get(destination));
      if (summary.ok) {
        // Completion, not acceptance: the destination runs it and the source does not.
        if (dstSeen.reachable && dstSeen.guest === 'running' && !(srcSeen.reachable && srcSeen.guest === 'running')) {
          const r = complete(g, summary, source, destination, attempt, false);
          await hook('post', g, source, destination, 'completed');
          return r;
        }
        ctx.emit({ event: 'warning', message: `${g.guest}: the migration reported success but ${destination} is ${dstSeen.reachable ? dstSeen.guest : 'unreachable'} and ${source} ${srcSeen.reachable ? srcSeen.guest : 'unreachable'}` });
      }
      const code = summary.error?.code ?? (summary.ok ? 'UNCERTAIN' : 'INTERNAL');
      const message = summary.error?.message ?? 'the agents do not confirm the migration';
      const sourceRunning = srcSeen.reachable && srcSeen.guest === 'running';
      if (!sourceRunning) {
        // Not back on its source: ask where it is (UNCERTAIN, a lost source, a success not confirmed).
        const rc = await reconcileGuest(ctx, g, source, destination);
        if (rc.found === destination) {
          const r = complete(g, summary.ok ? summary : null, source, destination, attempt, !summary.ok);
          await hook('post', g, source, destination, 'completed');
          return r;
        }
        if (rc.found !== source) {
          const r = fail(g, rc.certain ? 'failed' : 'uncertain', code === 'UNCERTAIN' || !rc.certain ? 'UNCERTAIN' : code, `${message} — ${rc.detail}`, rc.found, attempt);
          await hook('post', g, source, destination, r.outcome);
          return r;
        }
      }
      failures++;
      last = { code, reason: message };
      const cordons = cordonedSet(ctx.stateDir);
      const d = st.get(destination);
      const verdict = classifyFailure({ code, message, sourceRunning: true, destination: { reachable: d?.reachable === true, idle: d?.reachable === true && d.guest !== 'running' && d.guest !== 'paused' && d.guest !== 'incoming', cordoned: cordons.has(destination) } });
      if (!verdict.retry || failures > o.retries || stop.signal.aborted) {
        const why = !verdict.retry ? `; not retried: ${verdict.why}` : failures > o.retries ? `; gave up after ${failures} attempt(s) in this run` : `; no further attempt: ${stopReason().reason}`;
        const r = fail(g, 'failed', code, `${message}${why}`, source, attempt);
        await hook('post', g, source, destination, 'failed');
        return r;
      }
      let next = destination;
      if (verdict.destinationFault) {
        excluded.add(destination);
        reserved.delete(destination);
        if (!g.faulty.includes(destination)) g.faulty.push(destination);
        if (job.kind === 'return') {
          const r = fail(g, 'failed', code, `${message}; ${destination} is where ${g.guest} came from, no other destination: ${verdict.why}`, source, attempt);
          await hook('post', g, source, destination, 'failed');
          return r;
        }
        const v = await views();
        const src = v.find((n) => n.name === source);
        const c = src ? chooseDestination(needsOf(src, g.guest), v, { ...(o.to ? { to: o.to } : {}), ...(o.pool !== undefined ? { pool: o.pool } : {}), reserved, excluded }) : { destination: null, reason: `${source} is unknown` };
        if (c.destination === null) {
          const r = fail(g, 'failed', code, `${message}; ${verdict.why}, and ${c.reason}`, source, attempt);
          await hook('post', g, source, destination, 'failed');
          return r;
        }
        next = c.destination;
        reserved.add(next);
      }
      const delayMs = backoffMs(failures, o.retryDelayMs, o.retryMaxDelayMs);
      journal.append({ type: 'retry', guest: g.guest, attempt, code, reason: message, delayMs, destination: next, destinationFault: verdict.destinationFault });
      ctx.emit({ event: 'retry', guest: g.guest, attempt, code, reason: message, delayMs, destination: next, destinationFault: verdict.destinationFault });
      g.destination = next;
      g.status = 'pending';
      await sleep(delayMs, stop.signal);
    }
  }

  let results: GuestReport[];
  try {
    results = await Promise.all(guests.map((g) => runGuest(g)));
  } finally {
    if (timer) clearTimeout(timer);
    ctx.signal?.removeEventListener('abort', onCancel);
  }
  const counts: Record<GuestOutcome, number> = { completed: 0, failed: 0, skipped: 0, 'not-started': 0, uncertain: 0 };
  for (const r of results) counts[r.outcome]++;
  const ok = counts.completed === results.length;
  if (o.hooks.end) {
    const r = await runHook(o.hooks.end, { hook: 'end', job: job.id, result: ok ? 'completed' : 'failed' }, o.hooks.timeoutMs);
    journal.append({ type: 'hook', hook: 'end', ok: r.ok, exitCode: r.exitCode, output: r.output });
    ctx.emit({ event: 'hook', hook: 'end', ok: r.ok, exitCode: r.exitCode, output: r.output, ms: r.ms });
  }
  journal.append({ type: 'end', ok, counts, ...(cancelled ? { interrupted: 'cancelled' } : timedOut ? { interrupted: 'timeout' } : {}) });
  return {
    ok,
    kind: job.kind,
    id: job.id,
    journal: journal.path,
    dryRun: false,
    nodes: job.start.nodes,
    guests: results,
    counts,
    elapsedMs: performance.now() - t0,
    timedOut,
    plan: job.plan?.items ?? [],
  };
}

function failedSummary(source: string, destination: string, code: string, message: string): MigrationSummary {
  return { ok: false, source, destination, totalMs: 0, downtimeMs: 0, guestDowntimeMs: null, rounds: 0, bytesSent: 0, pagesSent: 0, zeroPages: 0, throughputMBps: 0, downtimeLimitMs: 0, expectedDowntimeMs: 0, verified: false, guestContinued: null, devices: [], downtimeBreakdownMs: {}, error: { code, message, sourceRunning: true } };
}
