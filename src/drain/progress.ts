import cliProgress from 'cli-progress';
import { bigintSafe } from '../cli/output.js';
import { planText } from './plan.js';
import type { DrainEvent, GuestReport, JobReport } from './types.js';

/**
 * How a drain shows itself. On a terminal: one line per guest with its
 * phase and percent, and a total line; other news (retries, hooks) printed
 * above them. Not on a terminal: one line per event. With --json: one JSON
 * object per event (NDJSON), and the job's summary object last.
 */
export type ProgressMode = 'tty' | 'lines' | 'json' | 'off';

type Write = (s: string) => void;

const pct = (p: number) => Math.max(0, Math.min(100, Math.floor(p * 100)));

export function outcomeLine(r: GuestReport): string {
  switch (r.outcome) {
    case 'completed':
      return `✓ ${r.guest} ${r.origin} → ${r.location}: completed${r.reconciled ? ' (found finished on the agents after a coordinator crash)' : ''}${r.totalMs !== undefined ? ` in ${(r.totalMs / 1000).toFixed(2)} s` : ''}${r.downtimeMs !== undefined ? `, downtime ${r.downtimeMs.toFixed(1)} ms` : ''}${r.verified !== undefined ? `, verified=${r.verified}` : ''}${r.guestContinued !== undefined && r.guestContinued !== null ? `, guest continued=${r.guestContinued}` : ''} (attempt ${r.attempts})`;
    case 'uncertain':
      return `? ${r.guest}: UNCERTAIN — ${r.reason ?? ''} [${r.code ?? 'UNCERTAIN'}]`;
    default: {
      const where = r.location ? `stays on ${r.location}` : 'location unknown';
      const what = r.outcome === 'skipped' ? 'skipped' : r.outcome === 'not-started' ? 'not started' : r.attempts === 0 ? 'cannot move' : `failed after ${r.attempts} attempt(s)`;
      return `✗ ${r.guest} ${where}: ${what}: ${r.reason ?? ''}${r.code ? ` [${r.code}]` : ''}`;
    }
  }
}

export function reportText(r: JobReport): string {
  const lines = [
    `${r.kind} ${r.id}${r.dryRun ? ' (dry run)' : ''}: ${r.ok ? 'done' : 'NOT done'} in ${(r.elapsedMs / 1000).toFixed(1)} s — ${r.counts.completed} completed, ${r.counts.failed} failed, ${r.counts.skipped} skipped, ${r.counts['not-started']} not started, ${r.counts.uncertain} uncertain${r.timedOut ? ' (the drain timed out)' : ''}`,
    ...r.guests.map((g) => `  ${outcomeLine(g)}`),
    `  journal: ${r.journal}`,
  ];
  return lines.join('\n');
}

/** One human line for an event, or null when the event is shown otherwise. */
export function eventLine(e: DrainEvent, withPhases: boolean): string | null {
  switch (e.event) {
    case 'plan':
      return planText(e.kind, { items: e.items, empty: e.empty });
    case 'cordon':
      return `cordoned ${e.nodes.join(', ')}`;
    case 'uncordon':
      return `uncordoned ${e.nodes.join(', ')}`;
    case 'resume':
      return `resuming ${e.id}: ${e.pending.length ? `still to move: ${e.pending.join(', ')}` : 'nothing left to move'}`;
    case 'reconciled':
      return `asked the agents about ${e.guest}: ${e.detail}`;
    case 'hook':
      return `${e.guest ?? 'end'}: ${e.hook} hook ${e.ok ? 'ok' : e.exitCode !== null ? `failed (exit ${e.exitCode})` : 'failed'} (${e.ms.toFixed(0)} ms)${e.output ? `: ${e.output.split('\n').filter(Boolean).at(-1)}` : ''}`;
    case 'started':
      return `→ ${e.guest} ${e.source} → ${e.destination}: started (attempt ${e.attempt})`;
    case 'migration':
      if (!withPhases) return null;
      if (e.e.type === 'phase') return `  ${e.guest} ${e.e.phase} ${pct(e.e.progress)}%`;
      if (e.e.type === 'round') return `  ${e.guest} round ${e.e.round}: ${pct(e.e.progress)}%, expected downtime ${e.e.expectedDowntimeMs.toFixed(0)}/${e.e.downtimeLimitMs.toFixed(0)} ms`;
      if (e.e.type === 'policy') return `  ${e.guest} policy ${e.e.action}: ${e.e.reason}`;
      if (e.e.type === 'rollback') return `  ${e.guest} rollback from ${e.e.fromPhase}: ${e.e.reason}`;
      if (e.e.type === 'warning') return `  ${e.guest} warning: ${e.e.message}`;
      return null;
    case 'retry':
      return `↻ ${e.guest} attempt ${e.attempt} failed: ${e.reason} [${e.code}]; retry ${e.attempt + 1} in ${(e.delayMs / 1000).toFixed(1)} s to ${e.destination}${e.destinationFault ? ' (the destination was at fault)' : ''}`;
    case 'finished':
      return null;
    case 'outcome':
      return outcomeLine(e);
    case 'timeout':
      return `the drain's time is up: ${e.action === 'abort' ? 'cancelling' : 'forcing the switch-over of'} ${e.inFlight.length ? e.inFlight.join(', ') : 'nothing in flight'}; no new migration starts`;
    case 'warning':
      return `warning: ${e.message}`;
  }
}

export class DrainProgress {
  private multi: cliProgress.MultiBar | null = null;
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  private total: cliProgress.SingleBar | null = null;
  private readonly done = { completed: 0, failed: 0, running: 0, all: 0 };

  constructor(
    readonly mode: ProgressMode,
    private readonly write: Write = (s) => process.stdout.write(s),
  ) {}

  static auto(json: boolean): DrainProgress {
    return new DrainProgress(json ? 'json' : process.stdout.isTTY ? 'tty' : 'lines');
  }

  on(e: DrainEvent): void {
    if (this.mode === 'off') return;
    if (this.mode === 'json') {
      this.write(`${JSON.stringify(e, bigintSafe)}\n`);
      return;
    }
    if (this.mode === 'lines') {
      const l = eventLine(e, true);
      if (l !== null) this.write(`${l}\n`);
      return;
    }
    this.onTty(e);
  }

  private log(line: string): void {
    if (this.multi) this.multi.log(`${line}\n`);
    else this.write(`${line}\n`);
  }

  private onTty(e: DrainEvent): void {
    if (e.event === 'plan' && !e.dryRun) {
      this.log(eventLine(e, false)!);
      const placed = e.items.filter((i) => i.destination !== null);
      if (!placed.length) return;
      this.multi = new cliProgress.MultiBar({ format: '{guest} {route} {phase} |{bar}| {percentage}% {note}', hideCursor: true, clearOnComplete: false, barsize: 20, autopadding: true }, cliProgress.Presets.shades_classic);
      this.done.all = placed.length;
      for (const i of placed) this.bars.set(i.guest, this.multi.create(100, 0, { guest: i.guest.padEnd(16), route: `${i.source}→${i.destination}`, phase: 'queued'.padEnd(10), note: `wave ${i.wave}` }));
      this.total = this.multi.create(placed.length, 0, { guest: 'total'.padEnd(16), route: '', phase: ''.padEnd(10), note: '' }, { format: '{guest} {route} |{bar}| {value}/{total} done {note}' });
      this.updateTotal();
      return;
    }
    const bar = 'guest' in e && e.guest ? this.bars.get(e.guest) : undefined;
    if (e.event === 'started' && bar) {
      this.done.running++;
      bar.update(0, { route: `${e.source}→${e.destination}`, phase: 'setup'.padEnd(10), note: e.attempt > 1 ? `attempt ${e.attempt}` : '' });
      this.updateTotal();
      return;
    }
    if (e.event === 'migration' && bar) {
      if (e.e.type === 'phase') bar.update(pct(e.e.progress), { phase: e.e.phase.padEnd(10) });
      else if (e.e.type === 'round') bar.update(pct(e.e.progress), { note: `round ${e.e.round}, expected ${e.e.expectedDowntimeMs.toFixed(0)}/${e.e.downtimeLimitMs.toFixed(0)} ms` });
      else if (e.e.type === 'stream') bar.update(pct(e.e.progress), { note: `round ${e.e.round}, ${(e.e.rateBps / 1e6).toFixed(0)} MB/s` });
      else {
        const l = eventLine(e, true);
        if (l) this.log(l);
      }
      return;
    }
    if (e.event === 'finished' && bar) {
      this.done.running--;
      this.updateTotal();
      return;
    }
    if (e.event === 'outcome') {
      if (bar) bar.update(e.outcome === 'completed' ? 100 : bar.getProgress() * 100, { phase: (e.outcome === 'completed' ? 'done' : e.outcome.toUpperCase()).padEnd(10), note: e.outcome === 'completed' ? `on ${e.location}` : (e.code ?? '') });
      if (e.outcome === 'completed') this.done.completed++;
      else this.done.failed++;
      this.updateTotal();
      this.log(outcomeLine(e));
      return;
    }
    const l = eventLine(e, false);
    if (l !== null) this.log(l);
  }

  private updateTotal(): void {
    this.total?.update(this.done.completed, { note: `${this.done.running} running, ${this.done.failed} not moved` });
  }

  stop(): void {
    this.multi?.stop();
    this.multi = null;
  }
}
