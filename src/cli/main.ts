#!/usr/bin/env node
import { Command, Option } from 'commander';
import { BaremigError } from '../errors.js';
import { registerDrainCommands } from '../drain/command.js';
import { parseRate, parseSize } from '../inventory/size.js';
import { clusterDown, clusterUp } from '../sim/localCluster.js';
import { defaultClusterDir } from './clusterDir.js';
import { inventoryFrom } from './connect.js';
import { benchCommand } from './commands/bench.js';
import { experimentCommand } from '../experiments/command.js';
import { demoResult, runDemo } from './commands/demo.js';
import { migrationOptions, runMigration } from './commands/migrate.js';
import { nodeStatuses, nodesText } from './commands/nodes.js';
import { type Out, exitCodeFor, makeOut, reportError } from './output.js';
import { ProgressView } from './progressView.js';
import { summaryJson, summaryText } from './summary.js';

// Output piped into `head` and the like: a closed stdout must not kill a
// migration half-way (nor skip the demo's clean-up).
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
});

const program = new Command();
program
  .name('baremig')
  .description('Live migration of operating systems running on bare-metal nodes, device state included')
  .version('0.1.0')
  .option('--nodes-file <path>', 'nodes file (default: $BAREMIG_NODES, else .baremig/nodes.yaml of `cluster up`)')
  .showHelpAfterError('(run with --help for usage)');

function size(flag: string, v: string): number {
  const n = parseSize(v);
  if (n === null || n <= 0) throw new BaremigError('USAGE', `${flag} '${v}' is not a size like 512M or 4G`);
  if (n % (1024 * 1024) !== 0) throw new BaremigError('USAGE', `${flag} must be a whole number of MiB`);
  if (n > 4 * 1024 ** 3) throw new BaremigError('USAGE', `${flag} is at most 4G`);
  return n;
}

function rate(flag: string, v: string): number {
  const n = parseRate(v);
  if (n === null) throw new BaremigError('USAGE', `${flag} '${v}' is not a rate like 20MB/s or 100mbit`);
  return n;
}

/** Runs a command body with uniform error reporting and exit codes. */
function action<A extends unknown[]>(fn: (out: Out, ...args: A) => Promise<number | void>) {
  return async (...args: A) => {
    const cmd = args[args.length - 1] as Command;
    const json = Boolean(cmd.opts().json);
    const out = makeOut(json);
    try {
      const code = await fn(out, ...args);
      process.exitCode = code ?? 0;
    } catch (e) {
      process.exitCode = reportError(e, json);
    }
  };
}

const globalNodesFile = () => program.opts().nodesFile as string | undefined;

const cluster = program.command('cluster').description('a simulated cluster on this machine');
cluster
  .command('up')
  .description('start simulated nodes (one process each) and write their nodes file')
  .option('--nodes <names>', 'comma-separated node names', 'node17,node42')
  .option('--ram <size>', 'RAM per node (and of each guest)', '512M')
  .option('--guests <names>', 'nodes that boot a guest', 'node17')
  .option('--devices <kinds>', 'device kinds each node has (pic,pit,rtl8169)', 'pic,pit')
  .option('--dirty-rate <rate>', "guests' memory dirty rate", '20MB/s')
  .option('--dir <path>', 'where the nodes file, logs and pids go', defaultClusterDir())
  .option('--json', 'machine-readable output')
  .action(
    action(async (out, o: { nodes: string; ram: string; guests: string; devices: string; dirtyRate: string; dir: string }) => {
      const nodes = o.nodes.split(',').map((s) => s.trim()).filter(Boolean);
      if (nodes.length === 0) throw new BaremigError('USAGE', '--nodes names no node');
      const { record } = await clusterUp({ dir: o.dir, nodes, ram: size('--ram', o.ram), guests: o.guests.split(',').map((s) => s.trim()).filter(Boolean), devices: o.devices.split(',').map((s) => s.trim()).filter(Boolean), dirtyRate: rate('--dirty-rate', o.dirtyRate), fillFraction: 0.5, seed: 1, detached: true });
      out.result({ ok: true, nodesFile: record.nodesFile, nodes: record.nodes }, `cluster up: ${record.nodes.map((n) => `${n.name} (${n.url})`).join(', ')}\nnodes file: ${record.nodesFile}`);
    }),
  );
cluster
  .command('down')
  .description('stop the simulated cluster')
  .option('--dir <path>', 'the directory given to cluster up', defaultClusterDir())
  .option('--json', 'machine-readable output')
  .action(
    action(async (out, o: { dir: string }) => {
      const stopped = await clusterDown(o.dir);
      out.result({ ok: true, stopped }, stopped.length ? `stopped ${stopped.join(', ')}` : 'no simulated cluster was running');
    }),
  );

program
  .command('nodes')
  .description('each node: reachable, running a guest or idle')
  .option('--json', 'machine-readable output')
  .action(
    action(async (out) => {
      const list = await nodeStatuses(inventoryFrom(globalNodesFile()));
      out.result({ ok: list.every((n) => n.reachable), nodes: list }, nodesText(list));
      return list.every((n) => n.reachable) ? 0 : 1;
    }),
  );

function addMigrationFlags(c: Command, timeoutFlag = '--timeout <duration>'): Command {
  return c
    .option('--downtime-limit <ms>', 'pause budget pre-copy aims for, ms', '300')
    .option('--bandwidth <rate>', 'cap on the page stream, e.g. 1gbit (default: none)')
    .option('--max-rounds <n>', 'pre-copy rounds at most', '30')
    .addOption(new Option('--on-stall <policy>', 'when pre-copy cannot converge').choices(['raise', 'abort']).default('raise'))
    .option('--max-downtime-limit <ms>', 'how far --on-stall raise may go, ms', '5000')
    .option(timeoutFlag, 'bound on the whole migration, e.g. 10m')
    .option('--json', 'one JSON object with the result');
}

addMigrationFlags(program.command('migrate <source> <destination>').description('live-migrate the guest running on <source> to the idle <destination>')).action(
  action(async (out, srcName: string, dstName: string, flags: Record<string, string>) => {
    const opts = migrationOptions(flags);
    const inv = inventoryFrom(globalNodesFile());
    const ac = new AbortController();
    const onSig = () => ac.abort();
    process.once('SIGINT', onSig);
    const view = ProgressView.auto(out.json, `${srcName}→${dstName}`);
    try {
      const s = await runMigration(inv, srcName, dstName, { ...opts, signal: ac.signal }, (e) => view.on(e));
      view.stop(s.ok);
      out.result(summaryJson(s), summaryText(s));
      return s.ok ? 0 : exitCodeFor(new BaremigError((s.error?.code ?? 'INTERNAL') as never, ''));
    } finally {
      process.off('SIGINT', onSig);
    }
  }),
);

addMigrationFlags(
  program
    .command('demo')
    .description('start a two-node simulated cluster, migrate a running guest node17 → node42, check it continues, clean up')
    .option('--ram <size>', 'guest RAM', '512M')
    .option('--dirty-rate <rate>', 'guest memory dirty rate', '20MB/s')
    .option('--devices <kinds>', 'device kinds the nodes have (none: empty)', 'pic,pit,rtl8169'),
).action(
  action(async (out, flags: Record<string, string>) => {
    const ac = new AbortController();
    const onSig = () => ac.abort();
    process.once('SIGINT', onSig);
    try {
      const r = await runDemo({ ram: size('--ram', flags.ram!), dirtyRate: rate('--dirty-rate', flags.dirtyRate!), devices: (flags.devices ?? '').split(',').map((s) => s.trim()).filter(Boolean), warmupMs: 1000, migration: migrationOptions(flags) }, out, ac.signal);
      const { obj, text, ok } = demoResult(r);
      out.result(obj, text);
      return ok ? 0 : 1;
    } finally {
      process.off('SIGINT', onSig);
    }
  }),
);

registerDrainCommands(program, { action, addMigrationFlags, nodesFile: globalNodesFile });

program.addCommand(benchCommand(action as never));
program.addCommand(experimentCommand(action as never));

await program.parseAsync(process.argv).catch((e: unknown) => {
  process.exitCode = reportError(e, process.argv.includes('--json'));
});
