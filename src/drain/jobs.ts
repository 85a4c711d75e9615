import { BaremigError } from '../errors.js';
import { type Inventory, findNode } from '../inventory/nodesFile.js';
import { agentOps } from './clusterOps.js';
import { cordon, cordonedSet, uncordon } from './cordon.js';
import { type JobInfo, Journal, listJobs, loadJob, locateDrained, ownerFile } from './journal.js';
import { type NodeView, candidateProblem, chooseDestination, needsOf, nodeViews, planDrain, planReturn } from './plan.js';
import { type RunContext, executeJob, reconcileGuest } from './runner.js';
import { disown, drainStateDir, tryOwn } from './stateDir.js';
import type { ClusterOps, DrainEventBody, DrainOptions, GuestOutcome, JobKind, JobReport, Plan } from './types.js';

/**
 * The jobs an operator starts: drain nodes, resume an interrupted job,
 * return guests to where they were drained from. Each is a journal in the
 * drain state directory run by `executeJob`.
 */
export interface JobRequest {
  inv: Inventory;
  emit: (e: DrainEventBody) => void;
  signal?: AbortSignal;
  /** The cluster; default: the agents of the nodes file. */
  ops?: ClusterOps;
  sleep?: RunContext['sleep'];
}

const zeroCounts = (): Record<GuestOutcome, number> => ({ completed: 0, failed: 0, skipped: 0, 'not-started': 0, uncertain: 0 });

function dryReport(kind: JobKind, nodes: string[], plan: Plan): JobReport {
  return { ok: plan.items.every((i) => i.destination !== null), kind, id: '(dry run)', journal: '', dryRun: true, nodes, guests: [], counts: zeroCounts(), elapsedMs: 0, timedOut: false, plan: plan.items };
}

function checkNodes(inv: Inventory, nodes: string[]): void {
  if (nodes.length === 0) throw new BaremigError('USAGE', 'name at least one node');
  if (new Set(nodes).size !== nodes.length) throw new BaremigError('USAGE', `a node is named twice: ${nodes.join(' ')}`);
  for (const n of nodes) findNode(inv, n);
}

const touches = (j: JobInfo, nodes: string[]) => {
  const s = new Set([...j.state.start.nodes, ...[...j.state.guests.values()].flatMap((g) => [g.origin, ...(g.destination ? [g.destination] : [])])]);
  return nodes.some((n) => s.has(n));
};

/** A job that never ended and involves these nodes blocks a new one: it is running, or must be resumed first. */
function refuseIfOpen(jobs: JobInfo[], nodes: string[]): void {
  for (const j of jobs) {
    if (j.state.end !== null || !touches(j, nodes)) continue;
    if (j.owner) throw new BaremigError('STATE', `${j.state.id} (process ${j.owner.pid}) is running on ${j.state.start.nodes.join(', ')}; wait for it or cancel it`);
    throw new BaremigError('STATE', `${j.state.id} on ${j.state.start.nodes.join(', ')} was interrupted (its coordinator is gone): run 'baremig ${j.state.kind} --resume' to finish it first (journal ${j.path})`);
  }
}

async function planDrainNow(ops: ClusterOps, inv: Inventory, stateDir: string, nodes: string[], o: DrainOptions): Promise<Plan> {
  const cordoned = cordonedSet(stateDir);
  for (const n of nodes) cordoned.add(n);
  const views = nodeViews(inv, await ops.statuses(), cordoned);
  return planDrain({ nodes: views, drain: nodes, ...(o.to ? { to: o.to } : {}), ...(o.pool !== undefined ? { pool: o.pool } : {}), parallel: o.parallel, perLink: o.perLink });
}

async function planReturnNow(ops: ClusterOps, req: JobRequest, jobs: JobInfo[], stateDir: string, nodes: string[], o: DrainOptions): Promise<Plan> {
  const guests: Array<{ guest: string; location: string; home: string }> = [];
  for (const home of nodes) {
    const found = locateDrained(jobs, home);
    if (!found.length) req.emit({ event: 'warning', message: `the journals record no guest drained from ${home}` });
    for (const f of found) {
      if (f.location === home) req.emit({ event: 'warning', message: `${f.guest} is already back on ${home}` });
      else guests.push({ guest: f.guest, location: f.location, home });
    }
  }
  const cordoned = cordonedSet(stateDir);
  for (const n of nodes) cordoned.delete(n);
  const views = nodeViews(req.inv, await ops.statuses(), cordoned);
  return planReturn({ nodes: views, guests, parallel: o.parallel, perLink: o.perLink });
}

/** After a drain: a drained node that runs a guest anyway (one that arrived during the drain) is worth a word. */
async function checkEmptied(ops: ClusterOps, req: JobRequest, report: JobReport): Promise<void> {
  if (report.kind !== 'drain') return;
  const st = await ops.statuses(report.nodes);
  const stay = new Set(report.guests.filter((g) => g.outcome !== 'completed').map((g) => g.origin));
  for (const s of st) if (s.reachable && s.guest === 'running' && !stay.has(s.name)) req.emit({ event: 'warning', message: `${s.name} runs a guest this drain did not plan for (did one arrive during the drain?): drain it again` });
}

async function runJob(req: JobRequest, journal: Journal, o: DrainOptions, resumed: boolean, settled?: Set<string>): Promise<JobReport> {
  const ops = req.ops ?? agentOps(req.inv);
  const job = loadJob(journal.path);
  const report = await executeJob({ inv: req.inv, stateDir: drainStateDir(req.inv.file), ops, journal, job, options: o, emit: req.emit, resumed, ...(settled ? { settled } : {}), ...(req.signal ? { signal: req.signal } : {}), ...(req.sleep ? { sleep: req.sleep } : {}) });
  await checkEmptied(ops, req, report);
  return report;
}

/** `baremig drain NODE…`: cordon, plan, migrate every guest off, journal it all. */
export async function startDrain(req: JobRequest & { nodes: string[]; options: DrainOptions; dryRun: boolean }): Promise<JobReport> {
  const { inv, nodes, options: o } = req;
  checkNodes(inv, nodes);
  for (const n of o.to ?? []) findNode(inv, n);
  const clash = (o.to ?? []).filter((n) => nodes.includes(n));
  if (clash.length) throw new BaremigError('USAGE', `--to names ${clash.join(', ')}, which this drain empties`);
  const ops = req.ops ?? agentOps(inv);
  const stateDir = drainStateDir(inv.file);
  refuseIfOpen(listJobs(stateDir), nodes);
  if (req.dryRun) {
    const plan = await planDrainNow(ops, inv, stateDir, nodes, o);
    req.emit({ event: 'plan', kind: 'drain', id: null, dryRun: true, items: plan.items, empty: plan.empty });
    return dryReport('drain', nodes, plan);
  }
  const id = Journal.newId('drain');
  const journal = Journal.create(stateDir, id);
  const owner = ownerFile(journal.path);
  tryOwn(owner, id);
  try {
    journal.append({ type: 'start', kind: 'drain', id, nodes, options: o, nodesFile: inv.file, pid: process.pid });
    // Cordon first: from here on no migration (of this or another coordinator) targets these nodes.
    cordon(stateDir, nodes, id);
    journal.append({ type: 'cordon', nodes });
    req.emit({ event: 'cordon', nodes });
    const plan = await planDrainNow(ops, inv, stateDir, nodes, o);
    journal.append({ type: 'plan', items: plan.items, empty: plan.empty });
    req.emit({ event: 'plan', kind: 'drain', id, dryRun: false, items: plan.items, empty: plan.empty });
    return await runJob(req, journal, o, false);
  } finally {
    journal.close();
    disown(owner);
  }
}

/** `baremig return NODE…`: bring the guests drained from NODE back to it (per the journals), uncordoning it. */
export async function startReturn(req: JobRequest & { nodes: string[]; options: DrainOptions; dryRun: boolean }): Promise<JobReport> {
  const { inv, nodes, options: o } = req;
  checkNodes(inv, nodes);
  const ops = req.ops ?? agentOps(inv);
  const stateDir = drainStateDir(inv.file);
  const jobs = listJobs(stateDir);
  refuseIfOpen(jobs, nodes);
  const plan = await planReturnNow(ops, req, jobs, stateDir, nodes, o);
  if (req.dryRun) {
    req.emit({ event: 'plan', kind: 'return', id: null, dryRun: true, items: plan.items, empty: plan.empty });
    return dryReport('return', nodes, plan);
  }
  const id = Journal.newId('return');
  const journal = Journal.create(stateDir, id);
  const owner = ownerFile(journal.path);
  tryOwn(owner, id);
  try {
    journal.append({ type: 'start', kind: 'return', id, nodes, options: o, nodesFile: inv.file, pid: process.pid });
    uncordon(stateDir, nodes);
    journal.append({ type: 'uncordon', nodes });
    req.emit({ event: 'uncordon', nodes });
    journal.append({ type: 'plan', items: plan.items, empty: plan.empty });
    req.emit({ event: 'plan', kind: 'return', id, dryRun: false, items: plan.items, empty: plan.empty });
    return await runJob(req, journal, o, false);
  } finally {
    journal.close();
    disown(owner);
  }
}

/**
 * `--resume`: finish the most recent unfinished job of this kind (on these
 * nodes, if named). First the agents are asked where each guest whose
 * migration was in flight is now, so that nothing is migrated twice and
 * nothing is lost; then every guest not yet moved is moved.
 */
export async function resumeJob(req: JobRequest & { kind: JobKind; nodes: string[]; overrides: Partial<DrainOptions>; dryRun: boolean }): Promise<JobReport> {
  const { inv } = req;
  for (const n of req.nodes) findNode(inv, n);
  const stateDir = drainStateDir(inv.file);
  const ops = req.ops ?? agentOps(inv);
  const all = listJobs(stateDir).filter((j) => j.state.kind === req.kind && req.nodes.every((n) => j.state.start.nodes.includes(n)));
  const latest = all.at(-1);
  if (!latest) throw new BaremigError('STATE', `no ${req.kind} ${req.nodes.length ? `of ${req.nodes.join(', ')} ` : ''}to resume in ${stateDir}`);
  if (!latest.unfinished) throw new BaremigError('STATE', `${latest.state.id} finished: every guest moved; nothing to resume`);
  const busy = (pid: number) => new BaremigError('STATE', `${latest.state.id} is being run by process ${pid} (if that is not a baremig coordinator, remove ${ownerFile(latest.path)})`);
  if (latest.owner && latest.owner.pid !== process.pid) throw busy(latest.owner.pid);
  const o: DrainOptions = { ...latest.state.start.options, ...req.overrides, hooks: { ...latest.state.start.options.hooks, ...(req.overrides.hooks ?? {}) }, migration: { ...latest.state.start.options.migration, ...(req.overrides.migration ?? {}) } };
  const pendingNames = () => [...loadJob(latest.path).guests.values()].filter((g) => g.status !== 'completed').map((g) => g.guest);
  if (req.dryRun) {
    const st = latest.state;
    req.emit({ event: 'resume', id: st.id, pending: pendingNames() });
    const items = [...st.guests.values()].filter((g) => g.status !== 'completed').map((g) => ({ ...g.item, source: g.location ?? g.origin, destination: g.destination }));
    req.emit({ event: 'plan', kind: req.kind, id: st.id, dryRun: true, items, empty: [] });
    return { ...dryReport(req.kind, st.start.nodes, { items, empty: [] }), id: st.id, journal: latest.path };
  }
  const owner = ownerFile(latest.path);
  const other = tryOwn(owner, latest.state.id);
  if (other && other.pid !== process.pid) throw busy(other.pid);
  const journal = Journal.reopen(latest.path);
  try {
    journal.append({ type: 'resume', pid: process.pid });
    req.emit({ event: 'resume', id: latest.state.id, pending: pendingNames() });
    if (req.kind === 'drain') {
      const added = cordon(stateDir, latest.state.start.nodes, latest.state.id);
      if (added.length) {
        journal.append({ type: 'cordon', nodes: added });
        req.emit({ event: 'cordon', nodes: added });
      }
    }
    let job = loadJob(latest.path);
    if (!job.plan) {
      // It died before its plan was journaled: plan now, as the first run would have.
      const plan = req.kind === 'drain' ? await planDrainNow(ops, inv, stateDir, job.start.nodes, o) : await planReturnNow(ops, req, listJobs(stateDir).filter((j) => j.path !== latest.path), stateDir, job.start.nodes, o);
      journal.append({ type: 'plan', items: plan.items, empty: plan.empty });
      req.emit({ event: 'plan', kind: req.kind, id: job.id, dryRun: false, items: plan.items, empty: plan.empty });
      job = loadJob(latest.path);
    }
    // 1. Migrations in flight when the coordinator died: where is each guest now?
    for (const g of job.guests.values()) {
      if (!g.inflight || g.status === 'completed') continue;
      const { source, destination, attempt } = g.inflight;
      const rc = await reconcileGuest({ ops, journal, emit: req.emit }, g, source, destination);
      if (rc.found === destination) journal.append({ type: 'completed', guest: g.guest, source, destination, attempt, reconciled: true });
      else if (rc.found !== source) journal.append({ type: 'failed', guest: g.guest, source, attempt, outcome: 'uncertain', code: 'UNCERTAIN', reason: rc.detail, location: rc.found });
    }
    // 2. Every guest still to move: still where the journal says? Its destination still free?
    job = loadJob(latest.path);
    const views: NodeView[] = nodeViews(inv, await ops.statuses(), cordonedSet(stateDir));
    const byName = new Map(views.map((v) => [v.name, v]));
    const reserved = new Set([...job.guests.values()].filter((g) => g.status !== 'completed' && g.destination).map((g) => g.destination!));
    const excluded = new Set([...job.guests.values()].flatMap((g) => g.faulty));
    const settled = new Set<string>();
    for (const g of job.guests.values()) {
      if (g.status === 'uncertain') settled.add(g.guest);
      if (g.status === 'completed' || g.status === 'uncertain') continue;
      const where = g.location ?? g.origin;
      const src = byName.get(where);
      if (!src || !src.reachable || src.guest !== 'running') {
        const detail = !src ? `${where} is not in the nodes file` : !src.reachable ? `${where} does not answer` : `${where} is ${src.guest}`;
        journal.append({ type: 'failed', guest: g.guest, source: g.origin, attempt: g.attempts, outcome: src?.reachable ? 'failed' : 'uncertain', code: 'STATE', reason: `${g.guest} is not running on ${where} (${detail}): moved or stopped outside this ${req.kind}?`, location: src?.reachable ? null : where });
        settled.add(g.guest);
        continue;
      }
      if (!g.destination) continue; // the runner looks for one
      const dst = byName.get(g.destination);
      reserved.delete(g.destination);
      const problem = dst ? candidateProblem(needsOf(src, g.guest), dst, { reserved, excluded }) : 'not in the nodes file';
      if (problem === null) {
        reserved.add(g.destination);
        continue;
      }
      if (req.kind === 'return') continue; // its destination is its home: the attempt says why it cannot go
      const c = chooseDestination(needsOf(src, g.guest), views, { ...(o.to ? { to: o.to } : {}), ...(o.pool !== undefined ? { pool: o.pool } : {}), reserved, excluded });
      journal.append({ type: 'retry', guest: g.guest, attempt: g.attempts, code: 'REPLAN', reason: `${g.destination} ${problem}`, delayMs: 0, destination: c.destination ?? g.destination, destinationFault: false });
      if (c.destination) reserved.add(c.destination);
      req.emit({ event: 'warning', message: `${g.guest}: planned destination ${g.destination} ${problem}; ${c.destination !== null ? `going to ${c.destination} instead` : c.reason}` });
    }
    return await runJob(req, journal, o, true, settled);
  } finally {
    journal.close();
    disown(owner);
  }
}
