/**
 * `baremig experiment sweep`: downtime and total time against the guest's
 * dirty rate and against its RAM size, each point one full `iperf-downtime`
 * run (same guest, same real iperf and ping, same link cap), with the
 * physical limits drawn beside the measurements:
 *
 * - total time ≥ the non-zero memory / link rate (every such page must cross once);
 * - downtime ≥ the bytes moved while the guest is paused / link rate.
 *
 * Past the point where the guest dirties memory about as fast as the link
 * moves it, pre-copy stops converging; the stall policy then raises the
 * downtime limit step by step (or aborts): its events are recorded per point.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import type { MigrationEvent } from '../engine/types.js';
import { type IperfDowntimeOptions, runIperfDowntime } from './iperfDowntime.js';
import { writeIperfDowntimeOutputs } from './iperfReport.js';
import { BASE_CONFIG, mdTable, toCsv, writeFigure } from './render.js';

export interface SweepOptions {
  /** Common settings of every point (RAM and dirty rate are overridden per point). */
  base: Omit<IperfDowntimeOptions, 'outDir' | 'progress' | 'signal' | 'ramBytes' | 'dirtyRateBytesPerSec'>;
  /** Dirty-rate axis: the RAM it runs at, and the rates (bytes/s). */
  dirtyRam: number;
  dirtyRates: number[];
  /** RAM axis: the dirty rate it runs at, and the sizes (bytes). */
  ramDirtyRate: number;
  rams: number[];
  outDir: string;
  progress: (line: string) => void;
  signal?: AbortSignal;
}

export interface SweepPoint {
  axis: 'dirty-rate' | 'ram';
  ramBytes: number;
  dirtyRateBytesPerSec: number;
  ok: boolean;
  error?: string;
  /** converged | limit raised | aborted | failed */
  outcome: string;
  totalMs: number;
  precopyMs: number | null;
  rounds: number;
  downtimeMs: number | null;
  guestDowntimeMs: number | null;
  pingMs: number | null;
  iperfMs: number | null;
  bytesSent: number;
  nonZeroBytes: number | null;
  /** nonZeroBytes / link rate. */
  totalLimitMs: number | null;
  /** Bytes sent with the guest paused (final copy and pages written during device capture). */
  pausedBytes: number | null;
  /** pausedBytes / link rate. */
  downtimeLimitMsPhysical: number | null;
  finalDowntimeLimitMs: number | null;
  policy: Array<{ action: string; reason: string; downtimeLimitMs: number; tS: number }>;
  dir: string;
}

const MB = 1e6;
const r1 = (x: number | null | undefined) => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 10) / 10);
const sizeLabel = (b: number) => (b >= 2 ** 30 ? `${b / 2 ** 30}G` : `${b / 2 ** 20}M`);

async function runPoint(o: SweepOptions, axis: SweepPoint['axis'], ramBytes: number, dirty: number): Promise<SweepPoint> {
  const dir = join(o.outDir, 'points', `${axis}-${sizeLabel(ramBytes)}-${(dirty / MB).toFixed(0)}MBps`);
  const run = await runIperfDowntime({ ...o.base, ramBytes, dirtyRateBytesPerSec: dirty, outDir: dir, progress: (l) => o.progress(`    ${l}`), ...(o.signal ? { signal: o.signal } : {}) });
  const res = await writeIperfDowntimeOutputs(run, dir);
  const s = run.summary;
  const policy = run.events.filter((e) => e.event.type === 'policy').map((e) => ({ ...(e.event as Extract<MigrationEvent, { type: 'policy' }>), tS: (e.wallMs - run.phases.startWallMs) / 1000 }));
  const precopyBytes = run.events.reduce((n, e) => n + (e.event.type === 'round' ? e.event.wireBytes : 0), 0);
  const pausedBytes = s.ok ? s.bytesSent - precopyBytes : null;
  const raised = policy.filter((p) => p.action === 'raise-limit').length;
  const outcome = !s.ok ? (policy.some((p) => p.action === 'abort') ? 'aborted' : 'failed') : raised ? `limit raised ${raised}×` : 'converged';
  return {
    axis,
    ramBytes,
    dirtyRateBytesPerSec: dirty,
    ok: s.ok,
    ...(s.error ? { error: s.error.message } : {}),
    outcome,
    totalMs: r1(s.totalMs)!,
    precopyMs: r1(run.precopy?.precopyMs),
    rounds: s.rounds,
    downtimeMs: s.ok ? r1(s.downtimeMs) : null,
    guestDowntimeMs: r1(s.guestDowntimeMs),
    pingMs: s.ok ? res.downtime.pingMs : null,
    iperfMs: s.ok ? res.downtime.iperfMs : null,
    bytesSent: s.bytesSent,
    nonZeroBytes: run.precopy?.nonZeroBytes ?? null,
    totalLimitMs: r1(run.precopy?.limitMs),
    pausedBytes,
    downtimeLimitMsPhysical: pausedBytes === null ? null : r1((pausedBytes / o.base.linkBytesPerSec) * 1000),
    finalDowntimeLimitMs: r1(s.downtimeLimitMs),
    policy: policy.map((p) => ({ action: p.action, reason: p.reason, downtimeLimitMs: r1(p.downtimeLimitMs)!, tS: r1(p.tS)! })),
    dir,
  };
}

export interface SweepResult {
  ok: boolean;
  experiment: 'sweep';
  outDir: string;
  realPeers: true;
  linkBytesPerSec: number;
  downtimeLimitMs: number;
  points: SweepPoint[];
  files: Record<string, string>;
}

export async function runSweep(o: SweepOptions): Promise<SweepResult> {
  mkdirSync(o.outDir, { recursive: true });
  const points: SweepPoint[] = [];
  const plan: Array<[SweepPoint['axis'], number, number]> = [...o.dirtyRates.map((d) => ['dirty-rate', o.dirtyRam, d] as [SweepPoint['axis'], number, number]), ...o.rams.map((r) => ['ram', r, o.ramDirtyRate] as [SweepPoint['axis'], number, number])];
  for (const [i, [axis, ram, dirty]] of plan.entries()) {
    o.signal?.throwIfAborted();
    o.progress(`[${i + 1}/${plan.length}] ${axis}: ${sizeLabel(ram)} guest dirtying ${(dirty / MB).toFixed(0)} MB/s`);
    const p = await runPoint(o, axis, ram, dirty);
    points.push(p);
    o.progress(`[${i + 1}/${plan.length}] ${p.outcome}: total ${(p.totalMs / 1000).toFixed(1)} s (limit ${p.totalLimitMs === null ? '?' : (p.totalLimitMs / 1000).toFixed(1)} s), downtime ${p.downtimeMs ?? '—'} ms (ping ${p.pingMs ?? '—'}, iperf ${p.iperfMs ?? '—'}), ${p.rounds} rounds`);
  }
  return writeSweepOutputs(o, points);
}

const AXIS = { 'dirty-rate': { title: 'guest dirty rate (MB/s)' }, ram: { title: 'guest RAM (GiB)' } } as const;

/** Two panels for one axis: total time against its limit, downtime against its limit. */
export function sweepSpec(points: SweepPoint[], axis: SweepPoint['axis'], linkBytesPerSec: number, downtimeLimitMs: number, fixed: string): TopLevelSpec {
  const pts = points.filter((p) => p.axis === axis);
  const xv = (p: SweepPoint) => (axis === 'ram' ? p.ramBytes / 2 ** 30 : p.dirtyRateBytesPerSec / MB);
  const time = pts.flatMap((p) => [
    { x: xv(p), s: p.totalMs / 1000, series: 'total time (measured)' },
    ...(p.precopyMs !== null ? [{ x: xv(p), s: p.precopyMs / 1000, series: 'pre-copy (measured)' }] : []),
    ...(p.totalLimitMs !== null ? [{ x: xv(p), s: p.totalLimitMs / 1000, series: 'limit: non-zero memory / link rate' }] : []),
  ]);
  const down = pts.flatMap((p) => [
    ...(p.downtimeMs !== null ? [{ x: xv(p), ms: p.downtimeMs, series: 'downtime (engine)' }] : []),
    ...(p.pingMs !== null ? [{ x: xv(p), ms: Math.max(p.pingMs, 1), series: 'downtime (ping)' }] : []),
    ...(p.iperfMs !== null ? [{ x: xv(p), ms: Math.max(p.iperfMs, 1), series: 'downtime (iperf)' }] : []),
    ...(p.downtimeLimitMsPhysical !== null ? [{ x: xv(p), ms: Math.max(p.downtimeLimitMsPhysical, 0.1), series: 'limit: bytes sent while paused / link rate' }] : []),
  ]);
  const labels = pts.filter((p) => p.outcome !== 'converged').map((p) => ({ x: xv(p), ms: p.downtimeMs ?? p.finalDowntimeLimitMs ?? downtimeLimitMs, label: p.ok ? `${p.outcome.replace('limit ', '')} → ${Math.round(p.finalDowntimeLimitMs ?? 0)} ms` : p.outcome }));
  const timeColors = { domain: ['total time (measured)', 'pre-copy (measured)', 'limit: non-zero memory / link rate'], range: ['#08306b', '#6baed6', '#636363'] };
  const downColors = { domain: ['downtime (engine)', 'downtime (ping)', 'downtime (iperf)', 'limit: bytes sent while paused / link rate'], range: ['#a63603', '#238b45', '#4292c6', '#636363'] };
  const dash = (limitName: string) => ({ condition: { test: `datum.series === '${limitName}'`, value: [6, 4] }, value: [1, 0] });
  const linkMBps = linkBytesPerSec / MB;
  const linkRule =
    axis === 'dirty-rate'
      ? [
          { data: { values: [{ x: linkMBps }] }, mark: { type: 'rule', color: '#cb181d', strokeDash: [3, 3] }, encoding: { x: { field: 'x', type: 'quantitative' } } },
          { data: { values: [{ x: linkMBps, label: `dirty rate = link rate (${linkMBps.toFixed(0)} MB/s)` }] }, mark: { type: 'text', color: '#cb181d', angle: 270, dx: -6, align: 'left', baseline: 'bottom', y: 316 }, encoding: { x: { field: 'x', type: 'quantitative' }, text: { field: 'label' } } },
        ]
      : [];
  const xEnc = { field: 'x', type: 'quantitative', title: AXIS[axis].title };
  const timePanel = {
    width: 470,
    height: 320,
    title: { text: 'Total migration time and pre-copy', fontSize: 13 },
    layer: [
      { data: { values: time }, mark: { type: 'line', point: true }, encoding: { x: xEnc, y: { field: 's', type: 'quantitative', title: 'time (s)' }, color: { field: 'series', type: 'nominal', scale: timeColors, legend: { title: null, orient: 'bottom', direction: 'vertical', labelLimit: 400 } }, strokeDash: dash('limit: non-zero memory / link rate') } },
      ...linkRule,
    ],
  };
  const downPanel = {
    width: 470,
    height: 320,
    title: { text: 'Downtime', fontSize: 13 },
    layer: [
      { data: { values: down }, mark: { type: 'line', point: true }, encoding: { x: xEnc, y: { field: 'ms', type: 'quantitative', title: 'downtime (ms, log scale)', scale: { type: 'log' } }, color: { field: 'series', type: 'nominal', scale: downColors, legend: { title: null, orient: 'bottom', direction: 'vertical', labelLimit: 400 } }, strokeDash: dash('limit: bytes sent while paused / link rate') } },
      { data: { values: labels }, mark: { type: 'text', align: 'left', dx: 7, dy: 11, fontSize: 10, color: '#a63603' }, encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'ms', type: 'quantitative' }, text: { field: 'label' } } },
      ...linkRule,
    ],
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: axis === 'dirty-rate' ? 'Migration time and downtime against the guest dirty rate' : 'Migration time and downtime against guest RAM', subtitle: [`${fixed}; link ${((linkBytesPerSec * 8) / 1e9).toFixed(2)} Gb/s; each point a full run with real iperf and ping; dashed: the physical limits`, `pre-copy stops when the expected downtime is ≤ ${downtimeLimitMs} ms; when it stalls, the policy raises that limit ×1.5 per round (labels: how often, and to what)`] },
    config: BASE_CONFIG,
    hconcat: [timePanel, downPanel],
    spacing: 30,
    resolve: { scale: { color: 'independent', strokeDash: 'independent' } },
  } as unknown as TopLevelSpec;
}

export async function writeSweepOutputs(o: Pick<SweepOptions, 'outDir' | 'base' | 'dirtyRam' | 'ramDirtyRate'>, points: SweepPoint[]): Promise<SweepResult> {
  const files: Record<string, string> = {};
  const csvCols: Array<keyof SweepPoint & string> = ['axis', 'ramBytes', 'dirtyRateBytesPerSec', 'outcome', 'totalMs', 'totalLimitMs', 'precopyMs', 'rounds', 'downtimeMs', 'guestDowntimeMs', 'pingMs', 'iperfMs', 'pausedBytes', 'downtimeLimitMsPhysical', 'finalDowntimeLimitMs', 'bytesSent', 'nonZeroBytes', 'dir'];
  writeFileSync((files.sweep_csv = join(o.outDir, 'sweep.csv')), toCsv(csvCols, points as unknown as Array<Record<string, unknown>>));
  writeFileSync(
    (files.policy_csv = join(o.outDir, 'policy-events.csv')),
    toCsv(['axis', 'ramBytes', 'dirtyRateBytesPerSec', 'tS', 'action', 'downtimeLimitMs', 'reason'], points.flatMap((p) => p.policy.map((e) => ({ axis: p.axis, ramBytes: p.ramBytes, dirtyRateBytesPerSec: p.dirtyRateBytesPerSec, ...e })))),
  );
  const link = o.base.linkBytesPerSec;
  if (points.some((p) => p.axis === 'dirty-rate')) {
    const f = await writeFigure(sweepSpec(points, 'dirty-rate', link, o.base.downtimeLimitMs, `${sizeLabel(o.dirtyRam)}iB guest`), join(o.outDir, 'sweep-dirty-rate'));
    files.dirty_svg = f.svg;
    files.dirty_png = f.png;
  }
  if (points.some((p) => p.axis === 'ram')) {
    const f = await writeFigure(sweepSpec(points, 'ram', link, o.base.downtimeLimitMs, `guest dirtying ${(o.ramDirtyRate / MB).toFixed(0)} MB/s`), join(o.outDir, 'sweep-ram'));
    files.ram_svg = f.svg;
    files.ram_png = f.png;
  }
  const n = (x: number | null, d = 0) => (x === null ? '—' : x.toFixed(d));
  const table = mdTable(
    ['axis', 'RAM', 'dirty rate (MB/s)', 'outcome', 'rounds', 'total (s)', 'limit: non-zero / link (s)', 'pre-copy (s)', 'downtime engine (ms)', 'ping (ms)', 'iperf (ms)', 'limit: paused bytes / link (ms)'],
    points.map((p) => [p.axis, `${sizeLabel(p.ramBytes)}iB`, n(p.dirtyRateBytesPerSec / MB), p.outcome, String(p.rounds), n(p.totalMs / 1000, 2), p.totalLimitMs === null ? '—' : n(p.totalLimitMs / 1000, 2), p.precopyMs === null ? '—' : n(p.precopyMs / 1000, 2), n(p.downtimeMs, 1), n(p.pingMs, 1), n(p.iperfMs, 1), n(p.downtimeLimitMsPhysical, 1)]),
  );
  const policyLines = points
    .filter((p) => p.policy.length)
    .map((p) => `- ${p.axis} ${sizeLabel(p.ramBytes)}iB at ${(p.dirtyRateBytesPerSec / MB).toFixed(0)} MB/s: ${p.policy.map((e) => `${e.tS} s ${e.action} → ${e.downtimeLimitMs} ms (${e.reason})`).join('; ')}`);
  writeFileSync((files.sweep_md = join(o.outDir, 'sweep.md')), `${table}\n\nStall-policy events:\n\n${policyLines.length ? policyLines.join('\n') : '- none'}\n`);
  const result: SweepResult = { ok: points.every((p) => p.ok || p.outcome === 'aborted'), experiment: 'sweep', outDir: o.outDir, realPeers: true, linkBytesPerSec: link, downtimeLimitMs: o.base.downtimeLimitMs, points, files: { ...files, results_json: join(o.outDir, 'results.json') } };
  writeFileSync(join(o.outDir, 'results.json'), `${JSON.stringify(result, null, 2)}\n`);
  return result;
}
