/**
 * `npm run bench`: the memory benchmarks of the foundation issue, results to
 * bench/results.json and a table in bench/README.md (between markers).
 *
 *  1. paused 1 GiB guest, 1 MiB random / 1 MiB zero alternating, loopback,
 *     no cap — ours and QEMU's (fresh and pre-faulted destination), runs
 *     interleaved so that machine noise hits both alike; medians reported;
 *  2. running 1 GiB guest dirtying 50 MB/s over a 1 Gb/s cap, 100 ms limit;
 *  3. the coordinator's peak RSS while migrating a 4 GiB guest.
 */
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { runMemoryBench } from './memoryBench.js';
import { runQemuMemoryBench } from './qemuMemoryBench.js';

const GiB = 1024 ** 3;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
}

async function main(): Promise<void> {
  const outDir = process.argv[2] ?? 'bench';
  const runs = Number(process.env.BENCH_RUNS ?? 5);
  const ours: number[] = [];
  const oursPayload: number[] = [];
  const qemuFresh: number[] = [];
  const qemuWarm: number[] = [];
  let qemuVersion = '';
  let qemuWarmInvalid = 0;
  let qemuSkipped = '';
  for (let i = 0; i < runs; i++) {
    const q = await runQemuMemoryBench(GiB, false);
    if ('skipped' in q) qemuSkipped = q.skipped;
    else {
      qemuFresh.push(q.totalMs);
      qemuVersion = q.version;
    }
    const r = await runMemoryBench({ ram: GiB, paused: true });
    ours.push(r.totalMs);
    oursPayload.push(r.payloadBytes);
    const w = await runQemuMemoryBench(GiB, true);
    // QEMU sometimes reports total-time 0 for a completed run with a pre-allocated
    // destination: not a measurement, left out (and counted) rather than averaged in.
    if (!('skipped' in w)) {
      if (w.totalMs > 0) qemuWarm.push(w.totalMs);
      else qemuWarmInvalid++;
    }
    process.stdout.write(`run ${i + 1}/${runs}: ours ${r.totalMs.toFixed(0)} ms, QEMU fresh ${qemuFresh.at(-1)?.toFixed(0) ?? '-'} ms, QEMU pre-faulted ${qemuWarm.at(-1)?.toFixed(0) ?? '-'} ms\n`);
  }
  const running = await runMemoryBench({ ram: GiB, paused: false, dirtyRate: 50e6, bandwidth: 125e6, downtimeLimitMs: 100 });
  process.stdout.write(`running guest: ${running.rounds} rounds, downtime ${running.downtimeMs.toFixed(1)} ms, guest-observed ${running.guestDowntimeMs?.toFixed(1)} ms\n`);
  const big = await runMemoryBench({ ram: 4 * GiB, paused: true });
  process.stdout.write(`4 GiB: ${big.totalMs.toFixed(0)} ms, coordinator peak RSS ${big.coordinatorMaxRssMB.toFixed(0)} MB\n`);

  const results = {
    date: new Date().toISOString(),
    machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
    pausedGuest1GiB: {
      runs,
      oursMs: ours.map(Math.round),
      oursMedianMs: Math.round(median(ours)),
      payloadBytes: oursPayload[0],
      qemu: qemuSkipped ? { skipped: qemuSkipped } : { version: qemuVersion, freshMs: qemuFresh, freshMedianMs: median(qemuFresh), prefaultedMs: qemuWarm, prefaultedMedianMs: median(qemuWarm), prefaultedRunsReportingZero: qemuWarmInvalid },
    },
    runningGuest1GiB: {
      dirtyRateBps: 50e6,
      bandwidthCapBps: 125e6,
      downtimeLimitMs: 100,
      rounds: running.rounds,
      totalMs: Math.round(running.totalMs),
      downtimeMs: Number(running.downtimeMs.toFixed(1)),
      guestDowntimeMs: running.guestDowntimeMs === null ? null : Number(running.guestDowntimeMs.toFixed(1)),
      withinLimit: running.downtimeMs <= 100,
      verified: running.verified,
      breakdownMs: running.summary.downtimeBreakdownMs,
    },
    coordinator4GiB: { totalMs: Math.round(big.totalMs), payloadBytes: big.payloadBytes, peakRssMB: Math.round(big.coordinatorMaxRssMB) },
  };
  writeFileSync(join(outDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  const p = results.pausedGuest1GiB;
  const q = p.qemu as { freshMedianMs?: number; prefaultedMedianMs?: number; version?: string; skipped?: string };
  const table = [
    '<!-- results:start -->',
    `Measured ${results.date.slice(0, 10)} on ${results.machine.cpus} cores, Node ${results.machine.node}${q.version ? `, QEMU ${q.version}` : ''}.`,
    '',
    '| case | ours | QEMU |',
    '|---|---|---|',
    `| paused 1 GiB guest, half random, loopback, no cap: total time, median of ${runs} (runs) | **${p.oursMedianMs} ms** (${p.oursMs.join(', ')}) | ${q.skipped ? q.skipped : `fresh destination ${q.freshMedianMs} ms (${(p.qemu as { freshMs: number[] }).freshMs.join(', ')}); pre-faulted ${q.prefaultedMedianMs} ms (${(p.qemu as { prefaultedMs: number[] }).prefaultedMs.join(', ')}${qemuWarmInvalid ? `; ${qemuWarmInvalid} run(s) where QEMU reported 0 left out` : ''})`} |`,
    `| payload on the wire | ${(p.payloadBytes! / 2 ** 20).toFixed(1)} MiB | |`,
    `| running 1 GiB guest, 50 MB/s dirty, 1 Gb/s cap, 100 ms limit | ${results.runningGuest1GiB.rounds} rounds, total ${results.runningGuest1GiB.totalMs} ms, downtime ${results.runningGuest1GiB.downtimeMs} ms, guest-observed ${results.runningGuest1GiB.guestDowntimeMs} ms, within limit: ${results.runningGuest1GiB.withinLimit} | |`,
    `| coordinator peak RSS, paused 4 GiB guest | ${results.coordinator4GiB.peakRssMB} MB (total ${results.coordinator4GiB.totalMs} ms) | |`,
    '<!-- results:end -->',
  ].join('\n');
  const readme = join(outDir, 'README.md');
  const old = existsSync(readme) ? readFileSync(readme, 'utf8') : '';
  const next = /<!-- results:start -->[\s\S]*<!-- results:end -->/.test(old) ? old.replace(/<!-- results:start -->[\s\S]*<!-- results:end -->/, table) : `${old}\n${table}\n`;
  writeFileSync(readme, next);
  process.stdout.write(`results written to ${join(outDir, 'results.json')} and ${readme}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${(e as Error).stack}\n`);
  process.exit(1);
});
