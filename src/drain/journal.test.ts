import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Journal, foldJournal, listJobs, loadJob, locateDrained, readJournal } from './journal.js';
import { DEFAULT_DRAIN_OPTIONS, type PlanItem } from './types.js';

const dir = () => mkdtempSync(join(tmpdir(), 'baremig-journal-'));
const item = (guest: string, source: string, destination: string | null, order: number): PlanItem => ({ guest, source, destination, order, wave: destination ? 1 : null, ramBytes: 1, devices: [] });

function newJob(d: string, id: string, kind: 'drain' | 'return', nodes: string[], items: PlanItem[]): Journal {
  const j = Journal.create(d, id);
  j.append({ type: 'start', kind, id, nodes, options: DEFAULT_DRAIN_OPTIONS, nodesFile: join(d, 'nodes.yaml'), pid: 1 });
  j.append({ type: 'plan', items, empty: [] });
  return j;
}

describe('journal', () => {
  it('appends JSON lines with increasing seq, and reopens where it left off', () => {
    const d = dir();
    const j = newJob(d, 'drain-1', 'drain', ['a'], [item('guest@a', 'a', 'b', 1)]);
    j.append({ type: 'started', guest: 'guest@a', source: 'a', destination: 'b', attempt: 1 });
    j.close();
    const k = Journal.reopen(j.path);
    k.append({ type: 'resume', pid: 2 });
    k.close();
    const recs = readJournal(j.path);
    expect(recs.map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    expect(readFileSync(j.path, 'utf8').trim().split('\n').map((l) => JSON.parse(l).type)).toEqual(['start', 'plan', 'started', 'resume']);
    expect(() => Journal.create(d, 'drain-1')).toThrow();
  });

  it('ignores a last line cut short by a crash, refuses a damaged one in the middle', () => {
    const d = dir();
    const j = newJob(d, 'drain-2', 'drain', ['a'], [item('guest@a', 'a', 'b', 1)]);
    j.close();
    appendFileSync(j.path, '{"type":"started","gu');
    expect(readJournal(j.path).map((r) => r.type)).toEqual(['start', 'plan']);
    const text = readFileSync(j.path, 'utf8');
    writeFileSync(j.path, text.replace('"type":"plan"', '"type":plan'));
    expect(() => readJournal(j.path)).toThrow(/damaged/);
  });

  it('replays into each guest state: in flight, retried elsewhere, completed, failed', () => {
    const d = dir();
    const j = newJob(d, 'drain-3', 'drain', ['a', 'b', 'c'], [item('guest@a', 'a', 'x', 1), item('guest@b', 'b', 'y', 2), item('guest@c', 'c', 'z', 3)]);
    j.append({ type: 'hook', hook: 'pre', guest: 'guest@a', ok: true, exitCode: 0, output: '' });
    j.append({ type: 'started', guest: 'guest@a', source: 'a', destination: 'x', attempt: 1 });
    j.append({ type: 'started', guest: 'guest@b', source: 'b', destination: 'y', attempt: 1 });
    j.append({ type: 'retry', guest: 'guest@b', attempt: 1, code: 'AGENT_UNREACHABLE', reason: 'y died', delayMs: 10, destination: 'w', destinationFault: true });
    j.append({ type: 'started', guest: 'guest@b', source: 'b', destination: 'w', attempt: 2 });
    j.append({ type: 'completed', guest: 'guest@b', source: 'b', destination: 'w', attempt: 2 });
    j.append({ type: 'started', guest: 'guest@c', source: 'c', destination: 'z', attempt: 1 });
    j.append({ type: 'failed', guest: 'guest@c', source: 'c', attempt: 1, outcome: 'failed', code: 'NOT_CONVERGING', reason: 'too fast', location: 'c' });
    j.close();
    const s = loadJob(j.path);
    const a = s.guests.get('guest@a')!;
    expect(a).toMatchObject({ status: 'in-flight', inflight: { source: 'a', destination: 'x', attempt: 1 }, preHookOk: true });
    expect(s.guests.get('guest@b')).toMatchObject({ status: 'completed', location: 'w', attempts: 2, faulty: ['y'], tried: ['y', 'w'] });
    expect(s.guests.get('guest@c')).toMatchObject({ status: 'failed', location: 'c', code: 'NOT_CONVERGING' });
    expect(s.guests.get('guest@c')!.inflight).toBeUndefined();
    expect(s.end).toBeNull();
    const jobs = listJobs(d);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.unfinished).toBe(true);
  });

  it('an uncertain outcome keeps its migration for the next resume to ask about', () => {
    const recs = [
      { type: 'start', kind: 'drain', id: 'x', nodes: ['a'], options: DEFAULT_DRAIN_OPTIONS, nodesFile: '', pid: 1, seq: 1, ts: 1 },
      { type: 'plan', items: [item('guest@a', 'a', 'b', 1)], empty: [], seq: 2, ts: 2 },
      { type: 'started', guest: 'guest@a', source: 'a', destination: 'b', attempt: 1, seq: 3, ts: 3 },
      { type: 'failed', guest: 'guest@a', source: 'a', attempt: 1, outcome: 'uncertain', code: 'UNCERTAIN', reason: '?', location: null, seq: 4, ts: 4 },
    ] as never;
    expect(foldJournal('x', recs).guests.get('guest@a')).toMatchObject({ status: 'uncertain', inflight: { destination: 'b' } });
  });

  it('follows a guest through later moves to find where it is (for return)', async () => {
    const d = dir();
    const j1 = newJob(d, 'drain-20240101T000000Z-a', 'drain', ['n1'], [item('guest@n1', 'n1', 'n5', 1)]);
    j1.append({ type: 'completed', guest: 'guest@n1', source: 'n1', destination: 'n5', attempt: 1 });
    j1.append({ type: 'end', ok: true, counts: { completed: 1, failed: 0, skipped: 0, 'not-started': 0, uncertain: 0 } });
    j1.close();
    await new Promise((r) => setTimeout(r, 5));
    // n5 drained later: the guest from n1 went on to n7.
    const j2 = newJob(d, 'drain-20240101T000001Z-b', 'drain', ['n5'], [item('guest@n5', 'n5', 'n7', 1)]);
    j2.append({ type: 'completed', guest: 'guest@n5', source: 'n5', destination: 'n7', attempt: 1 });
    j2.close();
    expect(locateDrained(listJobs(d), 'n1')).toEqual([{ guest: 'guest@n1', location: 'n7', drainId: 'drain-20240101T000000Z-a' }]);
    await new Promise((r) => setTimeout(r, 5));
    const j3 = newJob(d, 'return-20240101T000002Z-c', 'return', ['n1'], [item('guest@n1', 'n7', 'n1', 1)]);
    j3.append({ type: 'completed', guest: 'guest@n1', source: 'n7', destination: 'n1', attempt: 1 });
    j3.close();
    expect(locateDrained(listJobs(d), 'n1')[0]!.location).toBe('n1');
    expect(locateDrained(listJobs(d), 'n9')).toEqual([]);
  });
});
