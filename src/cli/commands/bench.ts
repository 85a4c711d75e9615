import { Command } from 'commander';
import { BaremigError } from '../../errors.js';
import { runMemoryBench } from '../../bench/memoryBench.js';
import { runQemuMemoryBench } from '../../bench/qemuMemoryBench.js';
import { parseRate, parseSize } from '../../inventory/size.js';
import type { Out } from '../output.js';

/** `baremig bench memory`: one measured migration of the benchmark guest, optionally beside QEMU's. */
export function benchCommand(action: (fn: (out: Out, o: Record<string, string | boolean>) => Promise<number | void>) => (...a: unknown[]) => Promise<void>): Command {
  const bench = new Command('bench').description('benchmarks (npm run bench runs the whole set)');
  bench
    .command('memory')
    .description('migrate a guest whose RAM alternates 1 MiB random / 1 MiB zero between two local nodes; paused unless --running')
    .option('--ram <size>', 'guest RAM', '1G')
    .option('--running', 'keep the guest running (dirtying memory)')
    .option('--dirty-rate <rate>', 'dirty rate with --running', '50MB/s')
    .option('--bandwidth <rate>', 'cap on the page stream, e.g. 1gbit')
    .option('--downtime-limit <ms>', 'downtime limit', '300')
    .option('--qemu', 'also migrate the same content with QEMU (fresh destination)')
    .option('--json', 'one JSON object')
    .action(
      action(async (out, o) => {
        const ram = parseSize(String(o.ram));
        if (!ram || ram % (1 << 20) !== 0 || ram > 4 * 1024 ** 3) throw new BaremigError('USAGE', `--ram '${o.ram}' must be a whole number of MiB up to 4G`);
        const bandwidth = o.bandwidth ? parseRate(String(o.bandwidth)) : undefined;
        if (bandwidth === null) throw new BaremigError('USAGE', `--bandwidth '${o.bandwidth}' is not a rate`);
        const dirtyRate = parseRate(String(o.dirtyRate));
        if (dirtyRate === null) throw new BaremigError('USAGE', `--dirty-rate '${o.dirtyRate}' is not a rate`);
        const r = await runMemoryBench({ ram, paused: !o.running, dirtyRate, ...(bandwidth ? { bandwidth } : {}), downtimeLimitMs: Number(o.downtimeLimit) });
        const q = o.qemu ? await runQemuMemoryBench(ram, false) : undefined;
        const obj = {
          totalMs: Math.round(r.totalMs * 10) / 10,
          payloadBytes: r.payloadBytes,
          rounds: r.rounds,
          downtimeMs: Math.round(r.downtimeMs * 10) / 10,
          guestDowntimeMs: r.guestDowntimeMs,
          verified: r.verified,
          coordinatorPeakRssMB: Math.round(r.coordinatorMaxRssMB),
          ...(q ? { qemu: q } : {}),
        };
        out.result(obj, `total ${obj.totalMs} ms, ${(r.payloadBytes / 2 ** 20).toFixed(1)} MiB on the wire, ${r.rounds} rounds, downtime ${obj.downtimeMs} ms, verified ${r.verified}${q && 'totalMs' in q ? `; QEMU ${q.version}: ${q.totalMs} ms` : ''}`);
      }),
    );
  return bench;
}
