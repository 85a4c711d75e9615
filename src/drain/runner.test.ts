import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isBaremigError } from '../errors.js';
import { cordon, cordonedSet } from './cordon.js';
import { Journal, listJobs, loadJob, readJournal } from './journal.js';
import { resumeJob, startDrain, startReturn } from './jobs.js';
import { drainStateDir } from './stateDir.js';
import { FakeCluster, MiB, collector, fakeInventory } from './testHarness.js';
import { DEFAULT_DRAIN_OPTIONS, type DrainEvent, type DrainOptions } from './types.js';

function world(guests: number, idle: number, extra: Array<{ name: string; ramCapacity?: number }> = []) {
  const names = [...Array.from({ length: guests }, (_, i) => `g${i + 1}`), ...Array.from({ length: idle }, (_, i) => `i${i + 1}`)];
  const inv = fakeInventory([...names, ...extra.map((e) => e.name)].map((name) => ({ name })));
  const fake = new FakeCluster([...names.map((name) => ({ name, guest: name.startsWith('g') ? ('running' as const) : ('none' as const) })), ...extra]);
  return { inv, fake, guests: names.filter((n) => n.startsWith('g')) };
}

const opts = (o: Partial<DrainOptions> = {}): DrainOptions => ({ ...DEFAULT_DRAIN_OPTIONS, retryDelayMs: 5, retryMaxDelayMs: 20, ...o });
const noSleep = (delays: number[]) => async (ms: number) => {
  delays.push(ms);
};

/** Most intervals [started, finished] open at once, from the events' timestamps. */
function maxOverlap(events: DrainEvent[]): number {
  const pts: Array<[number, number]> = [];
  for (const e of events) {
    if (e.event === 'started') pts.push([e.mono, 1]);
    if (e.event === 'finished') pts.push([e.mono, -1]);
  }
  pts.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0;
  let max = 0;
  for (const [, d] of pts) max = Math.max(max, (cur += d));
  return max;
}

describe('drain runner (fake cluster)', () => {
  it('moves every guest, at most --parallel at once, in plan order to the planned nodes', async () => {
    const { inv, fake, guests } = world(5, 6);
    fake.behaviour = () => ({ ms: 30 });
    const c = collector();
    const r = await startDrain({ inv, ops: fake, emit: c.emit, nodes: guests, options: opts({ parallel: 2 }), dryRun: false });
    expect(r.ok).toBe(true);
    expect(r.counts.completed).toBe(5);
    expect(fake.peak).toBe(2);
    expect(maxOverlap(c.events)).toBe(2);
    const plan = c.events.find((e) => e.event === 'plan')!;
    const started = c.events.filter((e) => e.event === 'started');
    expect(started.map((e) => [e.guest, e.destination])).toEqual(plan.event === 'plan' ? plan.items.map((i) => [i.guest, i.destination]) : []);
    expect(fake.running().sort()).toEqual(plan.event === 'plan' ? plan.items.map((i) => i.destination!).sort() : []);
    expect([...cordonedSet(drainStateDir(inv.file))].sort()).toEqual(guests);
    expect(fake.peakRunning).toBe(5);
  });

  it('never exceeds the budget, whatever the durations (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 3 }), fc.array(fc.integer({ min: 1, max: 15 }), { minLength: 6, maxLength: 6 }), async (n, parallel, ms) => {
        const { inv, fake, guests } = world(n, 6);
        let k = 0;
        fake.behaviour = () => ({ ms: ms[k++ % ms.length]! });
        const c = collector();
        const r = await startDrain({ inv, ops: fake, emit: c.emit, nodes: guests, options: opts({ parallel, perLink: 1 }), dryRun: false });
        expect(r.counts.completed).toBe(n);
        expect(fake.peak).toBeLessThanOrEqual(parallel);
        expect(fake.peakPerNode).toBeLessThanOrEqual(1);
        expect(maxOverlap(c.events)).toBeLessThanOrEqual(parallel);
        expect(fake.peakRunning).toBe(n);
      }),
      { numRuns: 15 },
    );
  });

  it('the dry run prints the plan the real run then follows, and changes nothing', async () => {
    const { inv, fake, guests } = world(3, 4, [{ name: 'small', ramCapacity: 16 * MiB }]);
    const dry = collector();
    const d = await startDrain({ inv, ops: fake, emit: dry.emit, nodes: guests, options: opts({ parallel: 2 }), dryRun: true });
    expect(d.dryRun).toBe(true);
    expect(fake.runs).toHaveLength(0);
    expect(cordonedSet(drainStateDir(inv.file)).size).toBe(0);
    expect(listJobs(drainStateDir(inv.file))).toHaveLength(0);
    const real = collector();
    await startDrain({ inv, ops: fake, emit: real.emit, nodes: guests, options: opts({ parallel: 2 }), dryRun: false });
    const p1 = dry.events.find((e) => e.event === 'plan') as Extract<DrainEvent, { event: 'plan' }>;
    const p2 = real.events.find((e) => e.event === 'plan') as Extract<DrainEvent, { event: 'plan' }>;
    expect(p2.items).toEqual(p1.items);
    expect(fake.runs.map((x) => [x.src, x.dst])).toEqual(p1.items.map((i) => [i.source, i.destination]));
  });

  it('a destination that dies: retried elsewhere, the reason printed, the dead node not used again', async () => {
    const { inv, fake, guests } = world(2, 3);
    fake.behaviour = (_s, dst, n) => ({ ms: 10, killDestination: n === 1 && dst === 'i1' });
    const c = collector();
    const delays: number[] = [];
    const r = await startDrain({ inv, ops: fake, emit: c.emit, nodes: guests, options: opts({ parallel: 2 }), dryRun: false, sleep: noSleep(delays) });
    expect(r.ok).toBe(true);
    const retry = c.events.find((e) => e.event === 'retry') as Extract<DrainEvent, { event: 'retry' }>;
    expect(retry).toMatchObject({ guest: 'guest@g1', attempt: 1, code: 'AGENT_UNREACHABLE', destination: 'i3', destinationFault: true });
    expect(retry.reason).toMatch(/lost connection to agent i1/);
    expect(r.guests.find((g) => g.guest === 'guest@g1')).toMatchObject({ outcome: 'completed', location: 'i3', attempts: 2 });
    expect(delays).toEqual([5]);
    const recs = readJournal(r.journal);
    expect(recs.filter((x) => x.type === 'retry')).toHaveLength(1);
    expect(fake.running().sort()).toEqual(['i2', 'i3']);
  });

  it('a guest that will not converge: retried with growing backoff, then reported failed on its source, running', async () => {
    const { inv, fake, guests } = world(1, 2);
    fake.behaviour = () => ({ ms: 2, fail: { code: 'NOT_CONVERGING', message: 'pre-copy does not converge: guest dirties 40.0 MB/s, the link moves 1.0 MB/s' } });
    const c = collector();
    const delays: number[] = [];
    const r = await startDrain({ inv, ops: fake, emit: c.emit, nodes: guests, options: opts({ retries: 3 }), dryRun: false, sleep: noSleep(delays) });
    expect(r.ok).toBe(false);
    expect(delays).toEqual([5, 10, 20]);
    expect(c.events.filter((e) => e.event === 'retry').map((e) => (e as { destination: string }).destination)).toEqual(['i1', 'i1', 'i1']);
    expect(r.guests[0]).toMatchObject({ outcome: 'failed', location: 'g1', attempts: 4, code: 'NOT_CONVERGING' });
    expect(r.guests[0]!.reason).toMatch(/does not converge.*gave up after 4 attempt/);
    expect(fake.running()).toEqual(['g1']);
  });

  it('no destination: reported with the reason, nothing migrated', async () => {
    const { inv, fake, guests } = world(2, 0, [{ name: 'tiny', ramCapacity: 16 * MiB }]);
    const c = collector();
    const r = await startDrain({ inv, ops: fake, emit: c.emit, nodes: guests, options: opts(), dryRun: false });
    expect(fake.runs).toHaveLength(0);
    expect(r.counts.failed).toBe(2);
    expect(r.guests[0]!.reason).toMatch(/no destination for guest@g1 .*g2 cordoned; tiny 16.0 MiB RAM, the guest needs 32.0 MiB/);
    expect(r.guests[0]!.code).toBe('NO_DESTINATION');
  });

  it('hooks: a failing pre hook skips that guest; post and end hooks see the results', async () => {
    const { inv, fake, guests } = world(2, 2);
    const c = collector();
    const r = await startDrain({ inv, ops: fake, emit: c.emit, nodes: guests, dryRun: false, options: opts({ hooks: { timeoutMs: 5000, pre: 'test "$BAREMIG_GUEST" != guest@g2 || { echo "g2 is busy"; exit 1; }', post: 'echo "$BAREMIG_GUEST:$BAREMIG_SOURCE:$BAREMIG_DESTINATION:$BAREMIG_RESULT"', end: 'echo "end $BAREMIG_RESULT"' } }) });
    expect(r.guests.map((g) => [g.guest, g.outcome])).toEqual([
      ['guest@g1', 'completed'],
      ['guest@g2', 'skipped'],
    ]);
    expect(r.guests[1]!.reason).toMatch(/pre hook failed: g2 is busy/);
    const hooks = c.events.filter((e) => e.event === 'hook') as Array<Extract<DrainEvent, { event: 'hook' }>>;
    expect(hooks.filter((h) => h.hook === 'post').map((h) => h.output).sort()).toEqual(['guest@g1:g1:i1:completed', 'guest@g2:g2:i2:skipped']);
    expect(hooks.find((h) => h.hook === 'end')!.output).toBe('end failed');
    expect(fake.runs.map((x) => x.src)).toEqual(['g1']);
  });

  it('--timeout with --on-timeout abort: in-flight migrations cancelled, queued ones not started, guests stay on their sources', async () => {
    const { inv, fake, guests } = world(3, 3);
    fake.behaviour = () => ({ ms: 400 });
    const c = collector();
    const r = await startDrain({ inv, ops: fake, emit: c.emit, nodes: guests, options: opts({ parallel: 2, timeoutMs: 100, onTimeout: 'abort' }), dryRun: false });
    expect(r.timedOut).toBe(true);
    expect(r.guests.map((g) => [g.outcome, g.code, g.location])).toEqual([
      ['failed', 'CANCELLED', 'g1'],
      ['failed', 'CANCELLED', 'g2'],
      ['not-started', 'TIMEOUT', 'g3'],
    ]);
    expect(fake.runs.every((x) => x.cancelled && x.end - x.start < 350)).toBe(true);
    expect(fake.running().sort()).toEqual(['g1', 'g2', 'g3']);
    expect(c.events.find((e) => e.event === 'timeout')).toMatchObject({ action: 'abort', inFlight: ['guest@g1', 'guest@g2'] });
  });

  it('--on-timeout force: in-flight migrations switch over and complete', async () => {
    const { inv, fake, guests } = world(2, 2);
    fake.behaviour = () => ({ ms: 400 });
    const c = collector();
    const r = await startDrain({ inv, ops: fake, emit: c.emit, nodes: guests, options: opts({ parallel: 1, timeoutMs: 100, onTimeout: 'force' }), dryRun: false });
    expect(r.guests.map((g) => g.outcome)).toEqual(['completed', 'not-started']);
    expect(fake.runs[0]!.forced).toBe(true);
    expect(c.events.some((e) => e.event === 'migration' && e.e.type === 'policy' && e.e.action === 'switch-over')).toBe(true);
  });

  it('a crash mid-drain: --resume asks the agents, migrates nothing twice, loses nothing', async () => {
    const { inv, fake } = world(4, 4);
    const dir = drainStateDir(inv.file);
    // The journal of a coordinator that died: g1 done; g2 finished on the agents but not journaled;
    // g3 in flight with its source paused in stop-and-copy (destination never ran); g4 not started.
    const plan = { items: [1, 2, 3, 4].map((n) => ({ order: n, guest: `guest@g${n}`, source: `g${n}`, destination: `i${n}`, wave: Math.ceil(n / 2), ramBytes: 32 * MiB, devices: [] })), empty: [] };
    const j = Journal.create(dir, 'drain-crashed');
    j.append({ type: 'start', kind: 'drain', id: 'drain-crashed', nodes: ['g1', 'g2', 'g3', 'g4'], options: opts({ parallel: 2 }), nodesFile: inv.file, pid: 999_999_999 });
    cordon(dir, ['g1', 'g2', 'g3', 'g4'], 'drain-crashed');
    j.append({ type: 'cordon', nodes: ['g1', 'g2', 'g3', 'g4'] });
    j.append({ type: 'plan', ...plan });
    j.append({ type: 'started', guest: 'guest@g1', source: 'g1', destination: 'i1', attempt: 1 });
    j.append({ type: 'completed', guest: 'guest@g1', source: 'g1', destination: 'i1', attempt: 1 });
    j.append({ type: 'started', guest: 'guest@g2', source: 'g2', destination: 'i2', attempt: 1 });
    j.append({ type: 'started', guest: 'guest@g3', source: 'g3', destination: 'i3', attempt: 1 });
    j.close();
    const set = (n: string, guest: 'running' | 'paused' | 'released' | 'none') => (fake.nodes.get(n)!.guest = guest);
    set('g1', 'released');
    set('i1', 'running');
    set('g2', 'paused'); // finished: destination runs, source not yet released
    set('i2', 'running');
    set('g3', 'paused');
    set('i3', 'released');
    // A new drain of these nodes is refused: finish the old one first.
    await expect(startDrain({ inv, ops: fake, emit: () => {}, nodes: ['g4'], options: opts(), dryRun: false })).rejects.toSatisfy((e) => isBaremigError(e, 'STATE') && /--resume/.test((e as Error).message));
    const c = collector();
    const r = await resumeJob({ inv, ops: fake, emit: c.emit, kind: 'drain', nodes: [], overrides: {}, dryRun: false });
    expect(r.ok).toBe(true);
    expect(r.guests.map((g) => [g.guest, g.outcome, g.location, g.reconciled ?? false])).toEqual([
      ['guest@g1', 'completed', 'i1', false],
      ['guest@g2', 'completed', 'i2', true],
      ['guest@g3', 'completed', 'i3', false],
      ['guest@g4', 'completed', 'i4', false],
    ]);
    // Migrated once each: g2 was not migrated again; g3 resumed on its source, then moved.
    expect(fake.runs.map((x) => x.src).sort()).toEqual(['g3', 'g4']);
    expect(fake.nodes.get('g2')!.guest).toBe('released');
    expect(fake.running().sort()).toEqual(['i1', 'i2', 'i3', 'i4']);
    const rec = c.events.filter((e) => e.event === 'reconciled').map((e) => [(e as { guest: string }).guest, (e as { action: string }).action]);
    expect(rec).toEqual([
      ['guest@g2', 'release-source'],
      ['guest@g3', 'resume-source'],
    ]);
    const s = loadJob(r.journal);
    expect([...s.guests.values()].every((g) => g.status === 'completed')).toBe(true);
    await expect(resumeJob({ inv, ops: fake, emit: () => {}, kind: 'drain', nodes: [], overrides: {}, dryRun: false })).rejects.toThrow(/nothing to resume/);
  });

  it('a crash before the plan was journaled: --resume plans, then moves everything', async () => {
    const { inv, fake, guests } = world(2, 2);
    const dir = drainStateDir(inv.file);
    const j = Journal.create(dir, 'drain-noplan');
    j.append({ type: 'start', kind: 'drain', id: 'drain-noplan', nodes: guests, options: opts(), nodesFile: inv.file, pid: 999_999_999 });
    j.close();
    const c = collector();
    const r = await resumeJob({ inv, ops: fake, emit: c.emit, kind: 'drain', nodes: ['g2'], overrides: {}, dryRun: false });
    expect(c.events.filter((e) => e.event === 'plan')).toHaveLength(1);
    expect(r.ok).toBe(true);
    expect(fake.running().sort()).toEqual(['i1', 'i2']);
    expect([...cordonedSet(dir)].sort()).toEqual(guests);
  });

  it('cancelled by the operator, then resumed to the end', async () => {
    const { inv, fake, guests } = world(3, 3);
    fake.behaviour = () => ({ ms: 60 });
    const ac = new AbortController();
    const c = collector();
    const p = startDrain({ inv, ops: fake, emit: (e) => (c.emit(e), e.event === 'started' && ac.abort()), signal: ac.signal, nodes: guests, options: opts({ parallel: 1 }), dryRun: false });
    const r1 = await p;
    expect(r1.guests.map((g) => g.outcome)).toEqual(['failed', 'not-started', 'not-started']);
    expect(fake.running().sort()).toEqual(['g1', 'g2', 'g3']);
    const dry = collector();
    const d = await resumeJob({ inv, ops: fake, emit: dry.emit, kind: 'drain', nodes: [], overrides: {}, dryRun: true });
    expect(d.dryRun).toBe(true);
    expect(dry.events.find((e) => e.event === 'resume')).toMatchObject({ pending: ['guest@g1', 'guest@g2', 'guest@g3'] });
    expect(fake.runs).toHaveLength(1);
    const r2 = await resumeJob({ inv, ops: fake, emit: () => {}, kind: 'drain', nodes: ['g1'], overrides: { parallel: 3 }, dryRun: false });
    expect(r2.ok).toBe(true);
    expect(fake.peak).toBe(3);
    expect(fake.running().sort()).toEqual(['i1', 'i2', 'i3']);
  });

  it('return brings the guests home and uncordons their nodes', async () => {
    const { inv, fake, guests } = world(2, 2);
    await startDrain({ inv, ops: fake, emit: () => {}, nodes: guests, options: opts(), dryRun: false });
    expect(fake.running().sort()).toEqual(['i1', 'i2']);
    const c = collector();
    const r = await startReturn({ inv, ops: fake, emit: c.emit, nodes: ['g1', 'g2'], options: opts(), dryRun: false });
    expect(r.ok).toBe(true);
    expect(fake.running().sort()).toEqual(['g1', 'g2']);
    expect(cordonedSet(drainStateDir(inv.file)).size).toBe(0);
    const again = collector();
    await startReturn({ inv, ops: fake, emit: again.emit, nodes: ['g1'], options: opts(), dryRun: false });
    expect(again.events.some((e) => e.event === 'warning' && /already back on g1/.test(e.message))).toBe(true);
  });
});
