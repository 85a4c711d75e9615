import cliProgress from 'cli-progress';
import type { MigrationEvent } from '../engine/types.js';
import { formatBytes } from '../inventory/size.js';

/**
 * Live progress of a migration. On a terminal: one bar with phase, round,
 * bytes, rate, dirty rate and expected downtime. Elsewhere: one line per
 * phase and round (logs stay readable). With --json: nothing here.
 */
export class ProgressView {
  private bar: cliProgress.SingleBar | null = null;
  private started = false;
  private payload = { phase: 'setup', round: 0, sent: '0 B', rate: '-', dirty: '-', expected: '-' };

  constructor(
    private readonly mode: 'tty' | 'lines' | 'off',
    private readonly label: string,
  ) {}

  static auto(json: boolean, label: string): ProgressView {
    return new ProgressView(json ? 'off' : process.stdout.isTTY ? 'tty' : 'lines', label);
  }

  on(e: MigrationEvent): void {
    if (this.mode === 'off') return;
    if (e.type === 'phase') this.payload.phase = e.phase;
    if (e.type === 'round') {
      this.payload.round = e.round;
      this.payload.sent = formatBytes(e.totalBytesSent);
      this.payload.rate = `${(e.bandwidthBps / 1e6).toFixed(0)} MB/s`;
      this.payload.dirty = `${(e.dirtyRateBps / 1e6).toFixed(1)} MB/s`;
      this.payload.expected = `${e.expectedDowntimeMs.toFixed(0)}/${e.downtimeLimitMs.toFixed(0)} ms`;
    }
    if (e.type === 'stream') {
      this.payload.round = e.round;
      this.payload.sent = formatBytes(e.totalBytesSent);
      this.payload.rate = `${(e.rateBps / 1e6).toFixed(0)} MB/s`;
    }
    if (this.mode === 'lines') {
      if (e.type === 'stream') {
        process.stdout.write(`[${(e.elapsedMs / 1000).toFixed(2)}s]   round ${e.round} streaming: ${this.payload.sent} sent at ${this.payload.rate}; ${(e.progress * 100).toFixed(0)}%\n`);
        return;
      }
      if (e.type === 'phase') process.stdout.write(`[${(e.elapsedMs / 1000).toFixed(2)}s] ${this.label} ${e.phase}\n`);
      else if (e.type === 'round')
        process.stdout.write(`[${(e.elapsedMs / 1000).toFixed(2)}s]   round ${e.round}: sent ${e.pagesSent} pages (${e.zeroPages} zero), ${this.payload.sent} total at ${this.payload.rate}; dirty ${e.dirtyPages} pages (${this.payload.dirty}); expected downtime ${this.payload.expected}; ${(e.progress * 100).toFixed(0)}%\n`);
      else if (e.type === 'policy') process.stdout.write(`  policy: ${e.action} (${e.reason}); downtime limit now ${e.downtimeLimitMs.toFixed(0)} ms\n`);
      else if (e.type === 'device') process.stdout.write(`  device ${e.name} (${e.kind}): restored in ${e.restoreMs.toFixed(1)} ms, ${e.programs} program(s)${e.extra ? `, ${JSON.stringify(e.extra)}` : ''}\n`);
      else if (e.type === 'rollback') process.stdout.write(`  rollback from ${e.fromPhase}: ${e.reason}; source ${e.sourceRunning ? 'running' : 'NOT running'}\n`);
      else if (e.type === 'warning') process.stdout.write(`  warning: ${e.message}\n`);
      return;
    }
    if (!this.started) {
      this.bar = new cliProgress.SingleBar(
        { format: `${this.label} {phase} r{round} |{bar}| {percentage}% {sent} @ {rate} dirty {dirty} expected {expected}`, hideCursor: true, clearOnComplete: false, barsize: 24 },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(100, 0, this.payload);
      this.started = true;
    }
    const progress = 'progress' in e && typeof e.progress === 'number' ? Math.floor(e.progress * 100) : undefined;
    if (progress !== undefined) this.bar!.update(progress, this.payload);
    else this.bar!.update(this.payload);
    if (e.type === 'warning' || e.type === 'policy') this.bar!.update(this.payload);
  }

  stop(done: boolean): void {
    if (this.bar) {
      if (done) this.bar.update(100, this.payload);
      this.bar.stop();
    }
    this.bar = null;
  }
}
