import { describe, expect, it } from 'vitest';
import { DrainProgress, eventLine, outcomeLine, reportText } from './progress.js';
import type { DrainEvent, DrainEventBody, JobReport } from './types.js';

const ev = (b: DrainEventBody): DrainEvent => ({ ...b, ts: 1, mono: 1 }) as DrainEvent;
const plan = ev({ event: 'plan', kind: 'drain', id: 'd1', dryRun: false, items: [{ order: 1, guest: 'guest@n1', source: 'n1', destination: 'n5', wave: 1, ramBytes: 32 << 20, devices: [] }, { order: 2, guest: 'guest@n2', source: 'n2', destination: null, wave: null, ramBytes: 32 << 20, devices: [], reason: 'no destination for guest@n2: n6 cordoned' }], empty: ['n3'] });

describe('drain progress', () => {
  it('--json: one JSON object per event, one per line', () => {
    const out: string[] = [];
    const p = new DrainProgress('json', (s) => out.push(s));
    p.on(plan);
    p.on(ev({ event: 'started', guest: 'guest@n1', source: 'n1', destination: 'n5', attempt: 1 }));
    p.on(ev({ event: 'migration', guest: 'guest@n1', attempt: 1, e: { type: 'phase', phase: 'precopy', elapsedMs: 1, progress: 0.25 } }));
    expect(out.every((l) => l.endsWith('\n') && l.indexOf('\n') === l.length - 1)).toBe(true);
    expect(out.map((l) => JSON.parse(l).event)).toEqual(['plan', 'started', 'migration']);
  });

  it('lines: the plan in waves, each retry with its reason, each outcome', () => {
    const out: string[] = [];
    const p = new DrainProgress('lines', (s) => out.push(s));
    p.on(plan);
    p.on(ev({ event: 'retry', guest: 'guest@n1', attempt: 1, code: 'AGENT_UNREACHABLE', reason: 'lost connection to agent n5', delayMs: 1000, destination: 'n7', destinationFault: true }));
    p.on(ev({ event: 'migration', guest: 'guest@n1', attempt: 2, e: { type: 'phase', phase: 'precopy', elapsedMs: 1, progress: 0.5 } }));
    p.on(ev({ event: 'outcome', guest: 'guest@n1', origin: 'n1', location: 'n7', destination: 'n7', outcome: 'completed', attempts: 2, totalMs: 1500, downtimeMs: 12.5, verified: true, guestContinued: true }));
    const text = out.join('');
    expect(text).toContain('drain plan: 1 migration(s) in 1 wave(s), 1 guest(s) cannot move');
    expect(text).toMatch(/wave 1:\n +1\. guest@n1 +n1 → n5/);
    expect(text).toMatch(/cannot move:\n +2\. guest@n2 +no destination for guest@n2: n6 cordoned/);
    expect(text).toContain('n3: no guest to move');
    expect(text).toContain('↻ guest@n1 attempt 1 failed: lost connection to agent n5 [AGENT_UNREACHABLE]; retry 2 in 1.0 s to n7 (the destination was at fault)');
    expect(text).toContain('guest@n1 precopy 50%');
    expect(text).toContain('✓ guest@n1 n1 → n7: completed in 1.50 s, downtime 12.5 ms, verified=true, guest continued=true (attempt 2)');
  });

  it('failures say where the guest is and why', () => {
    expect(outcomeLine({ guest: 'guest@n3', origin: 'n3', location: 'n3', destination: 'n6', outcome: 'failed', attempts: 3, code: 'NOT_CONVERGING', reason: 'pre-copy does not converge' })).toBe('✗ guest@n3 stays on n3: failed after 3 attempt(s): pre-copy does not converge [NOT_CONVERGING]');
    expect(eventLine(ev({ event: 'timeout', action: 'force', inFlight: ['guest@n1'] }), false)).toMatch(/forcing the switch-over of guest@n1/);
    const r: JobReport = { ok: false, kind: 'drain', id: 'd1', journal: '/x.jsonl', dryRun: false, nodes: ['n3'], guests: [], counts: { completed: 1, failed: 1, skipped: 0, 'not-started': 0, uncertain: 0 }, elapsedMs: 2000, timedOut: false, plan: [] };
    expect(reportText(r)).toMatch(/drain d1: NOT done in 2.0 s — 1 completed, 1 failed/);
  });
});
