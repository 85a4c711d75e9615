/**
 * `baremig experiment NAME [options] [--out DIR] [--json]`.
 *
 * Progress goes to stdout (stderr with --json, whose stdout is one JSON
 * object). Ctrl-C (or SIGTERM) cancels: a migration in flight rolls back,
 * then the namespace, the nodes, the switch, iperf and ping are removed; a
 * second Ctrl-C exits at once (the exit hooks still kill the children and
 * delete the namespace). Exit 0 when the run completed and wrote its outputs
 * (whether or not the targets were met: those are results), 1 when the
 * migration or the run failed, 2 for bad usage or a machine that cannot run
 * it (not root, tools missing).
 */
import { resolve } from 'node:path';
import { Command } from 'commander';
import { BaremigError } from '../errors.js';
import { parseDuration, parseRate, parseSize } from '../inventory/size.js';
import type { Out } from '../cli/output.js';
import { IPERF_DOWNTIME_DEFAULTS } from './defaults.js';
import type { IperfDowntimeOptions } from './iperfDowntime.js';
import type { IperfDowntimeResult } from './iperfReport.js';
import type { SweepResult } from './sweep.js';

type Action = (fn: (out: Out, o: Record<string, string | boolean>) => Promise<number | void>) => (...a: unknown[]) => Promise<void>;

function ram(flag: string, v: string): number {
  const n = parseSize(v);
  if (!n || n % (1 << 20) !== 0 || n < 64 * 2 ** 20 || n > 4 * 2 ** 30) throw new BaremigError('USAGE', `${flag} '${v}' must be a whole number of MiB from 64M to 4G`);
  return n;
}
function rate(flag: string, v: string, allowZero = false): number {
  if (allowZero && /^\s*0+(\.0+)?\s*([kmgt]?(bit|bps|b\/s|B\/s|Bps))?\s*$/i.test(v)) return 0;
  const n = parseRate(v);
  if (n === null) throw new BaremigError('USAGE', `${flag} '${v}' is not a rate like 1gbit, 10mbit or 20MB/s`);
  return n;
}
function ms(flag: string, v: string): number {
  const n = parseDuration(v);
  if (n === null) throw new BaremigError('USAGE', `${flag} '${v}' is not a duration like 5s or 500ms`);
  return n;
}
function num(flag: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw new BaremigError('USAGE', `${flag} '${v}' must be a number from ${min} to ${max}`);
  return n;
}

function stamp(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, '').replace(/:/g, '-');
}

/** Ctrl-C / SIGTERM cancel through the signal; a second one exits at once. */
function interruptible<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  let hits = 0;
  const onSig = (sig: NodeJS.Signals) => {
    hits++;
    if (hits === 1) {
      process.stderr.write(`\n${sig}: cancelling — rolling back and removing the namespace and processes (again to exit at once)\n`);
      ac.abort(new BaremigError('CANCELLED', `experiment interrupted (${sig}); namespace and processes removed`));
    } else process.exit(130);
  };
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  return fn(ac.signal).finally(() => {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  });
}

function commonOptions(c: Command): Command {
  return c
    .option('--link <rate>', 'migration link rate (the page stream is capped to it)', '1gbit')
    .option('--stream-rate <rate>', "the guest's UDP stream to iperf (payload)", '10mbit')
    .option('--downtime-limit <ms>', 'pause budget pre-copy aims for, ms', String(IPERF_DOWNTIME_DEFAULTS.downtimeLimitMs))
    .option('--iperf-interval <s>', "iperf's report interval (iperf -i), at least 0.1", String(IPERF_DOWNTIME_DEFAULTS.iperfIntervalS))
    .option('--ping-interval <s>', "ping's request interval (ping -i)", String(IPERF_DOWNTIME_DEFAULTS.pingIntervalMs / 1000))
    .option('--seed <n>', "seed of the guest's RAM content and memory load", String(IPERF_DOWNTIME_DEFAULTS.seed))
    .option('--out <dir>', 'output directory (default experiments/out/NAME-<timestamp>)')
    .option('--json', 'one JSON object on stdout (progress on stderr)');
}

function baseOptions(o: Record<string, string | boolean>): Omit<IperfDowntimeOptions, 'outDir' | 'progress' | 'signal' | 'ramBytes' | 'dirtyRateBytesPerSec' | 'warmupMs' | 'afterMs'> {
  return {
    linkBytesPerSec: rate('--link', String(o.link)),
    streamBitsPerSec: rate('--stream-rate', String(o.streamRate)) * 8,
    datagramBytes: IPERF_DOWNTIME_DEFAULTS.datagramBytes,
    downtimeLimitMs: num('--downtime-limit', String(o.downtimeLimit), 1, 60_000),
    // iperf -y C prints intervals to one decimal.
    iperfIntervalS: num('--iperf-interval', String(o.iperfInterval), 0.1, 10),
    pingIntervalMs: num('--ping-interval', String(o.pingInterval), 0.002, 10) * 1000,
    seed: Math.floor(num('--seed', String(o.seed), 0, 2 ** 31)),
  };
}

function iperfText(r: IperfDowntimeResult, table: string): string {
  const lines = [
    table,
    '',
    `engine downtime breakdown (ms): ${Object.entries(r.downtime.breakdownMs).map(([k, v]) => `${k} ${v}`).join(', ')}; devices: ${r.downtime.devices.map((d) => `${d.kind} capture ${d.captureMs} + restore ${d.restoreMs}`).join(', ') || 'none'}`,
    ...(r.migration.policy.length ? [`stall policy: ${r.migration.policy.map((p) => `${p.action} → ${p.downtimeLimitMs} ms (${p.reason})`).join('; ')}`] : []),
    r.migration.ok ? `migration verified: ${r.migration.verified}` : `migration FAILED: ${r.migration.error}`,
    `outputs in ${r.outDir}: iperf.csv, ping.csv, events.csv, throughput.svg/.png, table.md, results.json`,
  ];
  return lines.join('\n');
}

export function experimentCommand(action: Action): Command {
  const exp = new Command('experiment').description('experiments with real iperf and ping in a network namespace (root): iperf-downtime, sweep');

  commonOptions(
    exp
      .command('iperf-downtime')
      .description("migrate a guest streaming UDP to a real iperf and answering a real ping; plot throughput through the migration, compare with the original system's 0.7 s")
      .option('--ram <size>', 'guest RAM', '4G')
      .option('--dirty-rate <rate>', "the guest's memory load (pages dirtied at random)", `${IPERF_DOWNTIME_DEFAULTS.dirtyRateBytesPerSec / 1e6}MB/s`)
      .option('--warmup <duration>', 'stream and ping before the migration starts', '5s')
      .option('--after <duration>', 'stream and ping after the guest runs on node42', '3s'),
  ).action(
    action(async (out, o) => {
      const outDir = resolve(o.out ? String(o.out) : `experiments/out/iperf-downtime-${stamp()}`);
      const say = (l: string) => (out.json ? process.stderr.write(`${l}\n`) : out.info(l));
      const opts = { ...baseOptions(o), ramBytes: ram('--ram', String(o.ram)), dirtyRateBytesPerSec: rate('--dirty-rate', String(o.dirtyRate), true), warmupMs: ms('--warmup', String(o.warmup)), afterMs: ms('--after', String(o.after)), outDir, progress: say };
      const { runIperfDowntime } = await import('./iperfDowntime.js');
      const { comparisonTable, writeIperfDowntimeOutputs } = await import('./iperfReport.js');
      const run = await interruptible((signal) => runIperfDowntime({ ...opts, signal }));
      say('writing CSV, figure and table');
      const r = await writeIperfDowntimeOutputs(run, outDir);
      out.result(r, iperfText(r, comparisonTable(r)));
      return r.ok ? 0 : 1;
    }),
  );

  commonOptions(
    exp
      .command('sweep')
      .description('downtime and total time against the dirty rate and against RAM, with the physical limits; each point a full iperf-downtime run')
      .option('--dirty-ram <size>', 'RAM of the dirty-rate points', '512M')
      .option('--dirty-rates <list>', 'dirty rates (MB/s), comma-separated', '0,16,32,64,96,112,128,160')
      .option('--ram-dirty-rate <rate>', 'dirty rate of the RAM points', `${IPERF_DOWNTIME_DEFAULTS.dirtyRateBytesPerSec / 1e6}MB/s`)
      .option('--rams <list>', 'RAM sizes of the RAM points, comma-separated', '256M,512M,1G,2G,4G')
      .option('--warmup <duration>', 'stream and ping before each migration', '1.5s')
      .option('--after <duration>', 'stream and ping after each migration', '1s'),
  ).action(
    action(async (out, o) => {
      const outDir = resolve(o.out ? String(o.out) : `experiments/out/sweep-${stamp()}`);
      const say = (l: string) => (out.json ? process.stderr.write(`${l}\n`) : out.info(l));
      const dirtyRates = String(o.dirtyRates).split(',').map((s) => s.trim()).filter(Boolean).map((s) => num('--dirty-rates', s, 0, 10_000) * 1e6);
      const rams = String(o.rams).split(',').map((s) => s.trim()).filter(Boolean).map((s) => ram('--rams', s));
      const base = { ...baseOptions(o), warmupMs: ms('--warmup', String(o.warmup)), afterMs: ms('--after', String(o.after)) };
      const { runSweep } = await import('./sweep.js');
      const r: SweepResult = await interruptible((signal) =>
        runSweep({ base, dirtyRam: ram('--dirty-ram', String(o.dirtyRam)), dirtyRates, ramDirtyRate: rate('--ram-dirty-rate', String(o.ramDirtyRate), true), rams, outDir, progress: say, signal }),
      );
      out.result(r, `sweep: ${r.points.length} points, outputs in ${r.outDir} (sweep.csv, sweep.md, sweep-dirty-rate.svg/.png, sweep-ram.svg/.png, points/)`);
      return r.ok ? 0 : 1;
    }),
  );
  return exp;
}
