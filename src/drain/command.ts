import { type Command, Option } from 'commander';
import { migrationOptions } from '../cli/commands/migrate.js';
import { inventoryFrom } from '../cli/connect.js';
import type { Out } from '../cli/output.js';
import { BaremigError } from '../errors.js';
import { findNode } from '../inventory/nodesFile.js';
import { parseDuration } from '../inventory/size.js';
import { cordon, readCordons, uncordon } from './cordon.js';
import { startDrain, resumeJob, startReturn } from './jobs.js';
import { DrainProgress, reportText } from './progress.js';
import { drainStateDir } from './stateDir.js';
import { DEFAULT_DRAIN_OPTIONS, type DrainEventBody, type DrainOptions, type JobKind, type JobReport } from './types.js';

/**
 * The `drain`, `return`, `cordon` and `uncordon` commands. main.ts passes
 * its uniform error handling (`action`) and the flags of `migrate`.
 */
export interface CliDeps {
  action: <A extends unknown[]>(fn: (out: Out, ...args: A) => Promise<number | void>) => (...args: A) => Promise<void>;
  addMigrationFlags: (c: Command, timeoutFlag?: string) => Command;
  nodesFile: () => string | undefined;
}

type Flags = Record<string, string | string[] | boolean | undefined>;

function int(flag: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new BaremigError('USAGE', `${flag} must be a whole number ≥ ${min}, got '${v}'`);
  return n;
}

function dur(flag: string, v: string): number {
  const n = parseDuration(v);
  if (n === null || n <= 0) throw new BaremigError('USAGE', `${flag} '${v}' is not a duration like 500ms, 90s or 10m`);
  return n;
}

const list = (v: string | string[] | undefined) => (v === undefined ? [] : (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean));

/** The options the operator gave on the command line (only those, for --resume to override the journal's). */
export function givenOptions(f: Flags, given: (key: string) => boolean): Partial<DrainOptions> {
  const o: Partial<DrainOptions> = {};
  const str = (k: string) => (given(k) && typeof f[k] === 'string' ? (f[k] as string) : undefined);
  if (str('parallel') !== undefined) o.parallel = int('--parallel', str('parallel')!, 1);
  if (str('perLink') !== undefined) o.perLink = int('--per-link', str('perLink')!, 1);
  if (str('timeout') !== undefined) o.timeoutMs = dur('--timeout', str('timeout')!);
  if (str('onTimeout') !== undefined) o.onTimeout = str('onTimeout') as DrainOptions['onTimeout'];
  if (str('retries') !== undefined) o.retries = int('--retries', str('retries')!, 0);
  if (str('retryDelay') !== undefined) o.retryDelayMs = dur('--retry-delay', str('retryDelay')!);
  if (str('retryMaxDelay') !== undefined) o.retryMaxDelayMs = dur('--retry-max-delay', str('retryMaxDelay')!);
  if (given('to') && f.to !== undefined) o.to = list(f.to as string[]);
  if (str('pool') !== undefined) o.pool = str('pool')!;
  const hooks: Partial<DrainOptions['hooks']> = {};
  if (str('hookPre') !== undefined) hooks.pre = str('hookPre')!;
  if (str('hookPost') !== undefined) hooks.post = str('hookPost')!;
  if (str('hookEnd') !== undefined) hooks.end = str('hookEnd')!;
  if (str('hookTimeout') !== undefined) hooks.timeoutMs = dur('--hook-timeout', str('hookTimeout')!);
  if (Object.keys(hooks).length) o.hooks = hooks as DrainOptions['hooks'];
  const mkeys = ['downtimeLimit', 'bandwidth', 'maxRounds', 'onStall', 'maxDowntimeLimit', 'migrationTimeout'];
  if (mkeys.some((k) => given(k))) {
    const m = (k: string) => (given(k) ? (f[k] as string) : undefined);
    const mf: Record<string, string> = {};
    for (const [k, v] of [['downtimeLimit', m('downtimeLimit')], ['bandwidth', m('bandwidth')], ['maxRounds', m('maxRounds')], ['onStall', m('onStall')], ['maxDowntimeLimit', m('maxDowntimeLimit')], ['timeout', m('migrationTimeout')]] as const) if (v !== undefined) mf[k] = v;
    o.migration = migrationOptions(mf);
  }
  if (o.to && o.pool !== undefined) throw new BaremigError('USAGE', 'give --to or --pool, not both');
  if (o.to && o.to.length === 0) throw new BaremigError('USAGE', '--to names no node');
  if (o.retryMaxDelayMs !== undefined && o.retryDelayMs !== undefined && o.retryMaxDelayMs < o.retryDelayMs) throw new BaremigError('USAGE', '--retry-max-delay must not be below --retry-delay');
  return o;
}

export function withDefaults(o: Partial<DrainOptions>): DrainOptions {
  const d = DEFAULT_DRAIN_OPTIONS;
  return { ...d, ...o, hooks: { ...d.hooks, ...(o.hooks ?? {}) }, migration: { ...d.migration, ...(o.migration ?? {}) }, retryMaxDelayMs: Math.max(o.retryMaxDelayMs ?? d.retryMaxDelayMs, o.retryDelayMs ?? 0) };
}

function jobFlags(c: Command, deps: CliDeps, kind: JobKind): Command {
  if (kind === 'drain') {
    c.option('--to <nodes...>', 'destinations allowed (default: any node that fits)').option('--pool <name>', 'destinations only from this pool of the nodes file');
  }
  c.option('--parallel <n>', `migrations at once, at most (default ${DEFAULT_DRAIN_OPTIONS.parallel})`)
    .option('--per-link <n>', `migrations one node's migration link takes part in at once, at most (default ${DEFAULT_DRAIN_OPTIONS.perLink}); excess waits`)
    .option('--timeout <duration>', `bound on the whole ${kind}, e.g. 30m (default: none)`)
    .addOption(new Option('--on-timeout <action>', 'for migrations in flight when time is up: abort (guest stays on its source) or force (raise the downtime limit to its maximum and switch over)').choices(['abort', 'force']))
    .option('--retries <n>', `further attempts after a failed migration (default ${DEFAULT_DRAIN_OPTIONS.retries})`)
    .option('--retry-delay <duration>', 'first backoff before a retry; doubles each time (default 1s)')
    .option('--retry-max-delay <duration>', 'cap on the backoff (default 30s)')
    .option('--hook-pre <cmd>', 'run before each migration (sh -c; BAREMIG_GUEST, _SOURCE, _DESTINATION in its environment); failing skips the guest')
    .option('--hook-post <cmd>', 'run after each migration, with BAREMIG_RESULT')
    .option('--hook-end <cmd>', `run once at the end of the ${kind}, with BAREMIG_RESULT`)
    .option('--hook-timeout <duration>', 'kill a hook after this long (default 2m)')
    .option('--dry-run', 'print the ordered plan (which guest to which node, in which wave) and change nothing')
    .option('--resume', `finish the last interrupted ${kind} (its journal), asking the agents where in-flight guests ended up`);
  deps.addMigrationFlags(c, '--migration-timeout <duration>');
  const json = c.options.find((x) => x.long === '--json');
  if (json) json.description = 'one JSON object per event (NDJSON), the summary object last';
  return c;
}

async function runJobCommand(kind: JobKind, out: Out, deps: CliDeps, nodes: string[], flags: Flags, cmd: Command): Promise<number> {
  const given = (k: string) => cmd.getOptionValueSource(k) === 'cli' || cmd.getOptionValueSource(k) === 'env';
  const overrides = givenOptions(flags, given);
  const inv = inventoryFrom(deps.nodesFile());
  const progress = DrainProgress.auto(out.json);
  const emit = (e: DrainEventBody) => progress.on({ ...e, ts: Date.now(), mono: performance.now() });
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  let report: JobReport;
  try {
    const base = { inv, emit, signal: ac.signal, dryRun: Boolean(flags.dryRun) };
    if (flags.resume) report = await resumeJob({ ...base, kind, nodes, overrides });
    else if (kind === 'drain') report = await startDrain({ ...base, nodes, options: withDefaults(overrides) });
    else report = await startReturn({ ...base, nodes, options: withDefaults(overrides) });
  } finally {
    progress.stop();
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
  out.result({ event: 'summary', ...report }, report.dryRun ? `dry run: nothing was changed${report.ok ? '' : ' (some guests could not move)'}` : reportText(report));
  if (report.ok) return 0;
  return report.counts.uncertain > 0 ? 4 : 1;
}

export function registerDrainCommands(program: Command, deps: CliDeps): void {
  jobFlags(program.command('drain [nodes...]').description('move every running guest off NODE… (cordoned first) to compatible idle nodes, under a concurrency budget, with retries, a journal and --resume'), deps, 'drain').action(
    deps.action(async (out, nodes: string[], flags: Flags, cmd: Command) => {
      if (!flags.resume && nodes.length === 0) throw new BaremigError('USAGE', 'name the node(s) to drain, or --resume');
      return runJobCommand('drain', out, deps, nodes, flags, cmd);
    }),
  );
  jobFlags(program.command('return [nodes...]').description('move the guests drained from NODE… back to it (per the drain journals); uncordons NODE…'), deps, 'return').action(
    deps.action(async (out, nodes: string[], flags: Flags, cmd: Command) => {
      if (!flags.resume && nodes.length === 0) throw new BaremigError('USAGE', 'name the node(s) to return guests to, or --resume');
      return runJobCommand('return', out, deps, nodes, flags, cmd);
    }),
  );
  program
    .command('cordon [nodes...]')
    .description('mark NODE… as no migration target (persisted next to the nodes file); without nodes, list the cordoned nodes')
    .option('--json', 'machine-readable output')
    .action(
      deps.action(async (out, nodes: string[]) => {
        const inv = inventoryFrom(deps.nodesFile());
        const dir = drainStateDir(inv.file);
        if (nodes.length === 0) {
          const c = readCordons(dir);
          out.result({ ok: true, cordoned: c }, Object.keys(c).length ? Object.entries(c).map(([n, e]) => `${n}  cordoned since ${e.since} by ${e.by}`).join('\n') : 'no node is cordoned');
          return 0;
        }
        for (const n of nodes) findNode(inv, n);
        const added = cordon(dir, nodes, 'operator');
        out.result({ ok: true, cordoned: added, already: nodes.filter((n) => !added.includes(n)) }, nodes.map((n) => `${n} ${added.includes(n) ? 'cordoned' : 'was already cordoned'}`).join('\n'));
        return 0;
      }),
    );
  program
    .command('uncordon <nodes...>')
    .description('let migrations target NODE… again')
    .option('--json', 'machine-readable output')
    .action(
      deps.action(async (out, nodes: string[]) => {
        const inv = inventoryFrom(deps.nodesFile());
        for (const n of nodes) findNode(inv, n);
        const removed = uncordon(drainStateDir(inv.file), nodes);
        out.result({ ok: true, uncordoned: removed, notCordoned: nodes.filter((n) => !removed.includes(n)) }, nodes.map((n) => `${n} ${removed.includes(n) ? 'uncordoned' : 'was not cordoned'}`).join('\n'));
        return 0;
      }),
    );
}
