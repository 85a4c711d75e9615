import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMigration } from '../src/cli/commands/migrate.js';
import { connectNode } from '../src/cli/connect.js';
import { readCordons } from '../src/drain/cordon.js';
import { startDrain } from '../src/drain/jobs.js';
import { drainStateDir } from '../src/drain/stateDir.js';
import { isBaremigError } from '../src/errors.js';
import { planText } from '../src/drain/plan.js';
import { readJournal } from '../src/drain/journal.js';
import { DEFAULT_DRAIN_OPTIONS, type DrainEvent, type JobReport, type PlanItem } from '../src/drain/types.js';
import { readHeartbeat } from '../src/sim/guest/observer.js';
import { type DrainCluster, cli, events, maxConcurrent, sampleRunning, startDrainCluster } from './drainHelpers.js';

/**
 * `baremig drain` end to end, as an operator runs it: a simulated cluster
 * of 9 nodes (each its own process), 4 of them running a guest; the CLI as
 * a child process.
 */
const NODES = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n8', 'n9'];
const GUESTS = ['n1', 'n2', 'n3', 'n4'];
let dc: DrainCluster;
let nodesFile: string;

beforeAll(async () => {
  dc = await startDrainCluster(NODES.map((name) => ({ name, ...(GUESTS.includes(name) ? { guest: { workingSetBytes: 8 * 1024 * 1024, dirtyRate: 2e6 } } : {}) })));
  nodesFile = dc.nodesFile(NODES);
});
afterAll(async () => {
  await dc?.stop();
});

describe('baremig drain on a simulated cluster', () => {
  it('drains 4 nodes with --parallel 2: all guests on compatible idle nodes, never more than 2 at once, verified, continuing; the dry run printed that very plan', async () => {
    // The dry run, both as text and as JSON: it changes nothing.
    const dryText = cli(['--nodes-file', nodesFile, 'drain', ...GUESTS, '--parallel', '2', '--dry-run']);
    const dryJson = cli(['--nodes-file', nodesFile, 'drain', ...GUESTS, '--parallel', '2', '--dry-run', '--json']);
    expect(await dryText.exit).toBe(0);
    expect(await dryJson.exit).toBe(0);
    const dryPlan = events(dryJson.lines).find((e) => e.event === 'plan') as Extract<DrainEvent, { event: 'plan' }>;
    expect(dryPlan.dryRun).toBe(true);
    expect((await dc.running()).sort()).toEqual(GUESTS);
    expect(readCordons(drainStateDir(nodesFile))).toEqual({});

    // The real run, watched from outside: how many guests run at any moment.
    const run = cli(['--nodes-file', nodesFile, 'drain', ...GUESTS, '--parallel', '2', '--retry-delay', '200ms', '--json']);
    const samples = sampleRunning(dc, NODES, run.exit);
    expect(await run.exit).toBe(0);
    const counts = await samples;
    const evs = events(run.lines);
    const summary = run.lines.at(-1) as unknown as JobReport & { event: string };
    expect(summary.event).toBe('summary');
    expect(summary.ok).toBe(true);

    // The plan the real run journaled and followed is the dry run's.
    const plan = evs.find((e) => e.event === 'plan') as Extract<DrainEvent, { event: 'plan' }>;
    expect(plan.items).toEqual(dryPlan.items);
    expect(dryText.stdout()).toContain(planText('drain', { items: plan.items, empty: plan.empty }));
    const started = evs.filter((e) => e.event === 'started') as Array<Extract<DrainEvent, { event: 'started' }>>;
    expect(started.map((e) => [e.guest, e.source, e.destination, e.attempt])).toEqual(plan.items.map((i: PlanItem) => [i.guest, i.source, i.destination, 1]));
    expect(plan.items.map((i) => i.wave)).toEqual([1, 1, 2, 2]);

    // Budget: never more than 2 migrations at once, and the budget was used.
    const peak = maxConcurrent(evs);
    expect(peak).toBe(2);

    // Completion, not acceptance: each guest verified on its destination and continuing.
    expect(summary.counts).toEqual({ completed: 4, failed: 0, skipped: 0, 'not-started': 0, uncertain: 0 });
    for (const g of summary.guests) {
      expect(g).toMatchObject({ outcome: 'completed', verified: true, guestContinued: true, attempts: 1 });
      expect(NODES.filter((n) => !GUESTS.includes(n))).toContain(g.location);
    }
    const dests = summary.guests.map((g) => g.location!).sort();
    expect(new Set(dests).size).toBe(4);

    // Exactly one running copy of each guest, throughout and after.
    expect(Math.max(...counts)).toBeLessThanOrEqual(4);
    const st = await dc.statuses();
    expect(st.filter((s) => s.guest === 'running').map((s) => s.name).sort()).toEqual(dests);
    for (const n of GUESTS) expect(st.find((s) => s.name === n)!.guest).toBe('released');
    const inv = dc.inventory(NODES);
    for (const d of dests) {
      const c = await connectNode(inv, d);
      const a = (await readHeartbeat(c))!.counter;
      await new Promise((r) => setTimeout(r, 100));
      const b = (await readHeartbeat(c))!.counter;
      c.close();
      expect(b).toBeGreaterThan(a + 20n);
    }

    // The drained nodes stay cordoned, and `migrate` refuses them too.
    expect(Object.keys(readCordons(drainStateDir(nodesFile))).sort()).toEqual(GUESTS);
    await expect(runMigration(inv, dests[0]!, 'n1', {})).rejects.toSatisfy((e) => isBaremigError(e, 'CORDONED'));
    console.log(`drain e2e: 4 guests, parallel 2, peak ${peak} at once, ${(summary.elapsedMs / 1000).toFixed(2)} s, downtimes ${summary.guests.map((g) => g.downtimeMs!.toFixed(1)).join('/')} ms, running-guest samples ${counts.length} (max ${Math.max(...counts)})`);
  });

  it('return moves every guest back to where it came from (per the journal) and uncordons the nodes', async () => {
    const r = cli(['--nodes-file', nodesFile, 'return', ...GUESTS, '--parallel', '4', '--json']);
    expect(await r.exit).toBe(0);
    const s = r.lines.at(-1) as unknown as JobReport;
    expect(s.guests.map((g) => [g.guest, g.location, g.outcome])).toEqual(GUESTS.map((n) => [`guest@${n}`, n, 'completed']));
    expect((await dc.running()).sort()).toEqual(GUESTS);
    expect(readCordons(drainStateDir(nodesFile))).toEqual({});
  });

  it('the coordinator is SIGKILLed mid-drain; drain --resume finishes it and no guest is migrated twice', async () => {
    const first = cli(['--nodes-file', nodesFile, 'drain', 'n1', 'n2', '--parallel', '1', '--bandwidth', '16MB/s', '--json']);
    const second = (await first.waitFor((l) => l.event === 'started' && l.guest === 'guest@n2')) as Extract<DrainEvent, { event: 'started' }>;
    await first.waitFor((l) => l.event === 'migration' && l.guest === 'guest@n2' && (l.e as { type: string; phase?: string }).type === 'phase' && (l.e as { phase: string }).phase === 'precopy');
    first.child.kill('SIGKILL');
    expect(await first.exit).toBeNull();
    const before = events(first.lines);
    expect(before.filter((e) => e.event === 'outcome').map((e) => [(e as { guest: string }).guest, (e as { outcome: string }).outcome])).toEqual([['guest@n1', 'completed']]);
    expect(before.some((e) => e.event === 'summary' as never)).toBe(false);

    // A new drain of these nodes is refused while this one is unfinished.
    await expect(startDrain({ inv: dc.inventory(NODES), emit: () => {}, nodes: ['n2'], options: DEFAULT_DRAIN_OPTIONS, dryRun: false })).rejects.toThrow(/interrupted.*baremig drain --resume/);

    const resumed = cli(['--nodes-file', nodesFile, 'drain', '--resume', '--json']);
    expect(await resumed.exit).toBe(0);
    const after = events(resumed.lines);
    expect(after.find((e) => e.event === 'reconciled')).toMatchObject({ guest: 'guest@n2', found: 'n2' });
    expect(after.filter((e) => e.event === 'started').map((e) => [(e as { guest: string }).guest, (e as { destination: string }).destination])).toEqual([['guest@n2', second.destination]]);
    const summary = resumed.lines.at(-1) as unknown as JobReport;
    expect(summary.guests.map((g) => [g.guest, g.outcome])).toEqual([
      ['guest@n1', 'completed'],
      ['guest@n2', 'completed'],
    ]);
    expect(summary.guests[1]).toMatchObject({ verified: true, guestContinued: true });

    // The journal: one completion per guest, nothing started after it.
    const recs = readJournal(summary.journal);
    for (const g of ['guest@n1', 'guest@n2']) {
      const mine = recs.filter((r) => 'guest' in r && r.guest === g);
      expect(mine.filter((r) => r.type === 'completed')).toHaveLength(1);
      const done = mine.findIndex((r) => r.type === 'completed');
      expect(mine.slice(done + 1).some((r) => r.type === 'started')).toBe(false);
    }
    expect(recs.filter((r) => r.type === 'started' && r.guest === 'guest@n1')).toHaveLength(1);
    const st = await dc.statuses();
    expect(st.filter((s) => s.guest === 'running').map((s) => s.name).sort()).toEqual(['n3', 'n4', summary.guests[0]!.location!, summary.guests[1]!.location!].sort());
    expect(st.filter((s) => s.name === 'n1' || s.name === 'n2').map((s) => s.guest)).toEqual(['released', 'released']);
    console.log(`kill -9 mid-drain: resumed; guest@n2 found on n2 and moved to ${summary.guests[1]!.location}; ${recs.filter((r) => r.type === 'started').length} started records for 2 guests, ${recs.filter((r) => r.type === 'completed').length} completed`);
  });
});
