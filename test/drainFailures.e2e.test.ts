import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMigration } from '../src/cli/commands/migrate.js';
import { connectNode } from '../src/cli/connect.js';
import { cordon } from '../src/drain/cordon.js';
import { Journal, readJournal } from '../src/drain/journal.js';
import { resumeJob, startDrain } from '../src/drain/jobs.js';
import { drainStateDir } from '../src/drain/stateDir.js';
import { collector } from '../src/drain/testHarness.js';
import { DEFAULT_DRAIN_OPTIONS, type DrainEvent, type DrainOptions, type PlanItem } from '../src/drain/types.js';
import { migrate } from '../src/engine/migration.js';
import { readHeartbeat } from '../src/sim/guest/observer.js';
import { type DrainCluster, cli, startDrainCluster } from './drainHelpers.js';
import { MiB } from './helpers.js';

/**
 * What goes wrong during a drain, on a simulated cluster of 8 node
 * processes: no destination, an incompatible pool, a destination that dies
 * mid-migration, a guest that will not converge, the drain's time limit
 * (abort and force), and the crash windows of the coordinator. After each:
 * exactly one running copy of the guest.
 */
let dc: DrainCluster;
const ALL = ['a1', 's1', 's2', 'k1', 'd1', 'd2', 'h1', 'e1'];

beforeAll(async () => {
  dc = await startDrainCluster([
    { name: 'a1', guest: {} },
    { name: 's1', ram: 16 * MiB, file: { pool: 'small' } },
    { name: 's2', file: { pool: 'small', devices: ['pit'] } },
    { name: 'k1', guest: { workingSetBytes: 8 * MiB } },
    { name: 'd1' },
    { name: 'd2' },
    // Dirties 30 MB/s: far above an 8 MB/s link.
    { name: 'h1', guest: { workingSetBytes: 2 * MiB, dirtyRate: 30e6 } },
    { name: 'e1' },
  ]);
});
afterAll(async () => {
  await dc?.stop();
});

const opts = (o: Partial<DrainOptions> = {}): DrainOptions => ({ ...DEFAULT_DRAIN_OPTIONS, retryDelayMs: 100, ...o });

async function heartbeatAdvances(names: string[], node: string): Promise<boolean> {
  const c = await connectNode(dc.inventory(names), node);
  try {
    const a = (await readHeartbeat(c))!.counter;
    await new Promise((r) => setTimeout(r, 100));
    return (await readHeartbeat(c))!.counter > a + 20n;
  } finally {
    c.close();
  }
}

describe('drain failures, handled and reported', () => {
  it('no destination available: reported with the reason, the guest stays where it is', async () => {
    const names = ['a1', 's2'];
    const inv = dc.inventory(names.concat('s1'));
    cordon(drainStateDir(inv.file), ['s2'], 'test');
    const c = collector();
    const r = await startDrain({ inv, emit: c.emit, nodes: ['a1'], options: opts(), dryRun: false });
    expect(r.ok).toBe(false);
    expect(r.guests[0]).toMatchObject({ guest: 'guest@a1', outcome: 'failed', code: 'NO_DESTINATION', location: 'a1', attempts: 0 });
    expect(r.guests[0]!.reason).toMatch(/no destination for guest@a1 \(32.0 MiB, no devices\): s1 16.0 MiB RAM, the guest needs 32.0 MiB; s2 cordoned/);
    expect(await dc.running(ALL.slice(0, 3))).toEqual(['a1']);
  });

  it('an incompatible pool (devices, RAM): exit 1 and one clear reason per node', async () => {
    const nf = dc.nodesFile(['a1', 's1', 's2']);
    const r = cli(['--nodes-file', nf, 'drain', 'a1', '--pool', 'small', '--json']);
    expect(await r.exit).toBe(1);
    const s = r.lines.at(-1) as { ok: boolean; guests: Array<{ reason: string; outcome: string; location: string }> };
    expect(s.ok).toBe(false);
    expect(s.guests[0]!.outcome).toBe('failed');
    expect(s.guests[0]!.location).toBe('a1');
    expect(s.guests[0]!.reason).toContain('s1 16.0 MiB RAM, the guest needs 32.0 MiB');
    expect(s.guests[0]!.reason).toContain("s2 nodes file gives it [pit], the guest's node no devices");
    const text = cli(['--nodes-file', nf, 'drain', 'a1', '--pool', 'small', '--dry-run']);
    expect(await text.exit).toBe(1);
    expect(text.stdout()).toMatch(/cannot move:\n +1\. guest@a1 +no destination for guest@a1/);
    expect(await dc.running(['a1', 's1', 's2'])).toEqual(['a1']);
  });

  it('a destination that dies mid-migration: the guest is retried on another node and arrives there, once', async () => {
    const names = ['k1', 'd1', 'd2'];
    const inv = dc.inventory(names);
    const c = collector();
    let killed = '';
    const emit = (e: Parameters<typeof c.emit>[0]) => {
      c.emit(e);
      if (!killed && e.event === 'migration' && e.e.type === 'phase' && e.e.phase === 'precopy') {
        const started = c.events.find((x) => x.event === 'started') as Extract<DrainEvent, { event: 'started' }>;
        killed = started.destination;
        dc.cluster.nodes.get(killed)!.kill('SIGKILL');
      }
    };
    const r = await startDrain({ inv, emit, nodes: ['k1'], options: opts({ migration: { bandwidth: 30e6 } }), dryRun: false });
    expect(killed).toBe('d1');
    const retry = c.events.find((e) => e.event === 'retry') as Extract<DrainEvent, { event: 'retry' }>;
    expect(retry).toMatchObject({ guest: 'guest@k1', attempt: 1, destination: 'd2', destinationFault: true });
    expect(retry.reason).toMatch(/d1|stream|connection/i);
    expect(r.ok).toBe(true);
    expect(r.guests[0]).toMatchObject({ outcome: 'completed', location: 'd2', attempts: 2, verified: true, guestContinued: true });
    const st = await dc.statuses(names);
    expect(st.map((s) => [s.name, s.reachable ? s.guest : 'down'])).toEqual([
      ['k1', 'released'],
      ['d1', 'down'],
      ['d2', 'running'],
    ]);
    expect(await heartbeatAdvances(names, 'd2')).toBe(true);
    console.log(`destination death: ${retry.code} "${retry.reason}", retried on d2 after ${retry.delayMs} ms`);
  });

  it('a guest that will not converge (dirty rate above a tiny --bandwidth, --on-stall abort): retried, then left running on its source', async () => {
    const inv = dc.inventory(['h1', 'e1']);
    const c = collector();
    // Each round re-sends the whole working set (~260 ms at 8 MB/s), 5× the limit: it cannot converge; two rounds show it.
    const r = await startDrain({ inv, emit: c.emit, nodes: ['h1'], options: opts({ retries: 1, migration: { bandwidth: 8e6, onStall: 'abort', downtimeLimitMs: 50, maxRounds: 2 } }), dryRun: false });
    expect(r.ok).toBe(false);
    expect(r.guests[0]).toMatchObject({ outcome: 'failed', code: 'NOT_CONVERGING', location: 'h1', attempts: 2 });
    expect(r.guests[0]!.reason).toMatch(/^pre-copy does not converge: .*; gave up after 2 attempt/);
    const retries = c.events.filter((e) => e.event === 'retry');
    expect(retries).toHaveLength(1);
    expect(retries[0]).toMatchObject({ code: 'NOT_CONVERGING', destination: 'e1', destinationFault: false, delayMs: 100 });
    expect(await dc.running(['h1', 'e1'])).toEqual(['h1']);
    expect(await heartbeatAdvances(['h1', 'e1'], 'h1')).toBe(true);
  });

  it('--timeout with --on-timeout abort: the migration is cancelled and the guest stays on its source', async () => {
    const inv = dc.inventory(['h1', 'e1']);
    const c = collector();
    const t0 = performance.now();
    const r = await startDrain({ inv, emit: c.emit, nodes: ['h1'], options: opts({ timeoutMs: 400, onTimeout: 'abort', migration: { bandwidth: 8e6, downtimeLimitMs: 50 } }), dryRun: false });
    const ms = performance.now() - t0;
    expect(r.timedOut).toBe(true);
    expect(r.guests[0]).toMatchObject({ outcome: 'failed', code: 'CANCELLED', location: 'h1' });
    expect(c.events.find((e) => e.event === 'timeout')).toMatchObject({ action: 'abort', inFlight: ['guest@h1'] });
    expect(await dc.running(['h1', 'e1'])).toEqual(['h1']);
    console.log(`timeout abort: drain ended ${ms.toFixed(0)} ms after start (limit 400 ms; the engine notices the cancel at its next phase boundary)`);
  });

  it('--timeout with --on-timeout force: the downtime limit goes to its maximum and the guest switches over', async () => {
    const inv = dc.inventory(['h1', 'e1']);
    const c = collector();
    const r = await startDrain({ inv, emit: c.emit, nodes: ['h1'], options: opts({ timeoutMs: 400, onTimeout: 'force', migration: { bandwidth: 8e6, downtimeLimitMs: 50, maxDowntimeLimitMs: 3000 } }), dryRun: false });
    expect(r.timedOut).toBe(true);
    const forced = c.events.find((e) => e.event === 'migration' && e.e.type === 'policy' && e.e.action === 'switch-over') as Extract<DrainEvent, { event: 'migration' }> | undefined;
    expect(forced).toBeDefined();
    expect(forced!.e).toMatchObject({ downtimeLimitMs: 3000 });
    expect(r.guests[0]).toMatchObject({ outcome: 'completed', location: 'e1', verified: true, guestContinued: true });
    expect(await dc.running(['h1', 'e1'])).toEqual(['e1']);
    console.log(`timeout force: switched over with downtime ${r.guests[0]!.downtimeMs!.toFixed(0)} ms (limit raised to 3000 ms)`);
  });
});

function journalOf(dir: string, id: string, source: string, destination: string): Journal {
  const j = Journal.create(dir, id);
  const item: PlanItem = { order: 1, guest: `guest@${source}`, source, destination, wave: 1, ramBytes: 32 * MiB, devices: [] };
  j.append({ type: 'start', kind: 'drain', id, nodes: [source], options: opts(), nodesFile: '', pid: 2 ** 22 + 1 });
  cordon(dir, [source], id);
  j.append({ type: 'cordon', nodes: [source] });
  j.append({ type: 'plan', items: [item], empty: [] });
  j.append({ type: 'started', guest: item.guest, source, destination, attempt: 1 });
  j.close();
  return j;
}

describe('the coordinator dies mid-migration: --resume asks the agents first', () => {
  it('migration finished on the agents, no "completed" line: resume records it and migrates nothing', async () => {
    const inv = dc.inventory(['a1', 's2', 's1'], true);
    const dir = drainStateDir(inv.file);
    const j = journalOf(dir, 'drain-20200101T000000Z-w1', 'a1', 's2');
    // What the dead coordinator had set going finishes on the agents.
    const s = await runMigration(inv, 'a1', 's2', {});
    expect(s.ok).toBe(true);
    const c = collector();
    const r = await resumeJob({ inv, emit: c.emit, kind: 'drain', nodes: [], overrides: {}, dryRun: false });
    expect(r.guests[0]).toMatchObject({ guest: 'guest@a1', outcome: 'completed', location: 's2', reconciled: true });
    expect(c.events.filter((e) => e.event === 'started')).toHaveLength(0);
    expect(c.events.find((e) => e.event === 'reconciled')).toMatchObject({ found: 's2', action: 'none' });
    const recs = readJournal(j.path);
    expect(recs.filter((x) => x.type === 'started')).toHaveLength(1);
    expect(recs.filter((x) => x.type === 'completed')).toHaveLength(1);
    expect(await dc.running(['a1', 's2'])).toEqual(['s2']);
  });

  it('died in stop-and-copy (source paused, destination never ran): resume resumes the source, then moves the guest once', async () => {
    const inv = dc.inventory(['s2', 'a1'], true);
    const dir = drainStateDir(inv.file);
    const j = journalOf(dir, 'drain-20200101T000000Z-w2', 's2', 'a1');
    // The dead coordinator: its connections drop while the devices move.
    const src = await connectNode(inv, 's2');
    const dst = await connectNode(inv, 'a1');
    const sum = await migrate({ src, dst, dstDataHost: '127.0.0.1', onPhase: (p) => {
      if (p === 'devices') {
        src.close();
        dst.close();
      }
    } });
    expect(sum.ok).toBe(false);
    await new Promise((r) => setTimeout(r, 100));
    expect((await dc.statuses(['s2', 'a1'])).map((x) => x.guest)).toEqual(['paused', 'released']);
    const c = collector();
    const r = await resumeJob({ inv, emit: c.emit, kind: 'drain', nodes: ['s2'], overrides: {}, dryRun: false });
    expect(c.events.find((e) => e.event === 'reconciled')).toMatchObject({ found: 's2', action: 'resume-source' });
    expect(r.guests[0]).toMatchObject({ outcome: 'completed', location: 'a1', attempts: 2, verified: true, guestContinued: true });
    const recs = readJournal(j.path);
    expect(recs.filter((x) => x.type === 'started')).toHaveLength(2);
    expect(recs.filter((x) => x.type === 'completed')).toHaveLength(1);
    expect(await dc.running(['a1', 's2'])).toEqual(['a1']);
    expect(await heartbeatAdvances(['s2', 'a1'], 'a1')).toBe(true);
  });
});
