import type { MigrationSummary } from '../engine/types.js';
import { formatBytes } from '../inventory/size.js';

/** The fields `--json` promises, first; the rest after. */
export function summaryJson(s: MigrationSummary): Record<string, unknown> {
  return {
    ok: s.ok,
    totalMs: round(s.totalMs),
    downtimeMs: round(s.downtimeMs),
    guestDowntimeMs: s.guestDowntimeMs === null ? null : round(s.guestDowntimeMs),
    rounds: s.rounds,
    bytesSent: s.bytesSent,
    zeroPages: s.zeroPages,
    verified: s.verified,
    source: s.source,
    destination: s.destination,
    pagesSent: s.pagesSent,
    throughputMBps: round(s.throughputMBps),
    downtimeLimitMs: round(s.downtimeLimitMs),
    expectedDowntimeMs: round(s.expectedDowntimeMs),
    guestContinued: s.guestContinued,
    devices: s.devices,
    downtimeBreakdownMs: Object.fromEntries(Object.entries(s.downtimeBreakdownMs).map(([k, v]) => [k, round(v)])),
    ...(s.error ? { error: s.error } : {}),
  };
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

export function summaryText(s: MigrationSummary): string {
  const lines: string[] = [];
  if (s.ok) lines.push(`migrated ${s.source} → ${s.destination}: verified=${s.verified}`);
  else lines.push(`migration ${s.source} → ${s.destination} FAILED in ${s.error?.phase ?? '?'}: ${s.error?.message} [${s.error?.code}]`, `  guest on ${s.source}: ${s.error?.sourceRunning ? 'running (rolled back)' : 'NOT running — see the message above'}`);
  lines.push(
    `  total time        ${(s.totalMs / 1000).toFixed(2)} s`,
    `  downtime          ${s.ok ? `${s.downtimeMs.toFixed(1)} ms (limit ${s.downtimeLimitMs.toFixed(0)} ms, expected ${s.expectedDowntimeMs.toFixed(1)} ms)` : '-'}`,
    `  guest-observed    ${s.guestDowntimeMs === null ? 'n/a (guest exposes no heartbeat)' : `${s.guestDowntimeMs.toFixed(1)} ms largest heartbeat gap; continued=${s.guestContinued}`}`,
    `  rounds            ${s.rounds}`,
    `  sent              ${formatBytes(s.bytesSent)} (${s.pagesSent} pages, ${s.zeroPages} zero pages as headers)`,
    `  throughput        ${s.throughputMBps.toFixed(1)} MB/s`,
  );
  if (Object.keys(s.downtimeBreakdownMs).length) lines.push(`  pause breakdown   ${Object.entries(s.downtimeBreakdownMs).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')} ms`);
  for (const d of s.devices) lines.push(`  device ${d.name.padEnd(10)} ${d.kind}: capture ${d.captureMs.toFixed(1)} ms, restore ${d.restoreMs.toFixed(1)} ms in ${d.programs} program(s)${d.extra ? ` ${JSON.stringify(d.extra)}` : ''}`);
  return lines.join('\n');
}
