/**
 * Page stream throughput between two native agents (the C core as an addon
 * in simulated nodes, hypervisor/README.md) on the namespace
 * veth link (MTU 9000): full passes over a guest whose RAM is random (a few
 * zero pages), unshaped and with tbf shaping to 1 Gb/s.
 *
 *   npx tsx test/conformance/bench.native.ts [ramMiB=512] [--rates none,1gbit] [--passes 3] [--bandwidth BYTES_PER_S] [--loss PCT]
 *   npx tsx test/conformance/bench.native.ts --migrate [ramMiB=512] [--rates none,1gbit] [--passes 3]
 *
 * The first form streams all pages of a paused guest (streamPages which:'all',
 * the bulk pre-copy pass) `passes` times; the second runs whole live
 * migrations through the engine and reports their first (bulk) round.
 * Needs root. Prints a markdown table (bench/native.md) and, per run, both
 * agents' link counters.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { migrate } from '../../src/engine/migration.js';
import type { RoundInfo } from '../../src/engine/types.js';
import { AgentClient } from '../../src/protocol/client.js';
import { HeartbeatObserver } from '../../src/sim/guest/observer.js';
import { MiB, buildNative, nativeNet, nativeUnavailable } from './targets.js';

/** User + system CPU time of a process, ms (Linux /proc, clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

async function once(ramMiB: number, passes: number, rate?: string, bandwidth?: number, lossPct = 0): Promise<string> {
  const net = await nativeNet(2, { ...(rate ? { rate } : {}), ...(lossPct ? { loss: lossPct } : {}) });
  try {
    await net.startAgent('node1', { ram: `${ramMiB + 16}M` });
    await net.startAgent('node2', { ram: `${ramMiB + 16}M` });
    const src = await AgentClient.connect(net.url('node1'), { node: 'node1', key: net.key });
    const dst = await AgentClient.connect(net.url('node2'), { node: 'node2', key: net.key });
    const ws = (ramMiB - 2) * MiB;
    await src.request('boot', { ramBytes: ramMiB * MiB, spec: { modules: [{ name: 'memoryLoad', config: { workingSetBytes: ws, dirtyRateBytesPerSec: 0, seed: 3, fill: 'random' } }] } });
    await src.request('pause', {});
    const lines: string[] = [];
    const cpu0 = [cpuMs(net.agents.get('node1')!.pid!), cpuMs(net.agents.get('node2')!.pid!)];
    let streamMs = 0;
    for (let i = 0; i < passes; i++) {
      await dst.request('release', {});
      const prep = await dst.request('prepareIncoming', { ramBytes: ramMiB * MiB, devices: [] });
      const peer = { host: net.mac('node2'), port: prep.port, token: prep.token };
      const r = await src.request('streamPages', bandwidth ? { which: 'all', peer, bandwidth } : { which: 'all', peer }, 600_000);
      const sec = r.ms / 1000;
      streamMs += r.ms;
      const raw = r.pages - r.zeroPages;
      lines.push(`| ${rate ?? 'none'} | ${ramMiB} MiB | ${r.pages} (${r.zeroPages} zero) | ${r.ms.toFixed(0)} | ${Math.round(r.pages / sec)} | ${((r.wireBytes * 8) / sec / 1e9).toFixed(3)} | ${((raw * 4096 * 8) / sec / 1e9).toFixed(3)} |`);
    }
    const cpu = [cpuMs(net.agents.get('node1')!.pid!) - cpu0[0]!, cpuMs(net.agents.get('node2')!.pid!) - cpu0[1]!];
    const [ds, dd] = await Promise.all([src.request('digest', {}, 600_000), dst.request('digest', {}, 600_000)]);
    if (ds.hex !== dd.hex) throw new Error('digest mismatch after the stream');
    src.close();
    dst.close();
    const [s1, s2] = [await net.stats('node1'), await net.stats('node2')];
    lines.push(`<!-- source: retransmits ${s1.retransmits} (RACK ${s1.rackLost}, probes ${s1.probes}, timeouts ${s1.timeouts}), tx frames ${s1.txFrames}; destination: duplicates ${s2.dupData}, socket drops ${s2.sockDrops}, rx frames ${s2.rxFrames}; CPU while streaming: source ${((100 * cpu[0]!) / streamMs).toFixed(0)} %, destination ${((100 * cpu[1]!) / streamMs).toFixed(0)} % of a core; load average ${loadavg()[0]!.toFixed(1)} -->`);
    return lines.join('\n');
  } finally {
    await net.stop();
  }
}

/**
 * A live migration through the engine (what `baremig migrate` runs) of a
 * running guest: RAM mostly random (a memoryLoad module filling ramMiB - 48
 * MiB, not dirtying), a 32 MiB working set dirtied at 8 MB/s, the heartbeat.
 * Reports the first (bulk pre-copy) round's rate, the rounds and the downtime.
 */
async function migrateOnce(ramMiB: number, rate?: string): Promise<string> {
  const net = await nativeNet(2, rate ? { rate } : {});
  try {
    await net.startAgent('node1', { ram: `${ramMiB + 16}M` });
    await net.startAgent('node2', { ram: `${ramMiB + 16}M` });
    const src = await AgentClient.connect(net.url('node1'), { node: 'node1', key: net.key });
    const dst = await AgentClient.connect(net.url('node2'), { node: 'node2', key: net.key });
    const modules = [
      { name: 'heartbeat', config: { periodNs: 1_000_000 } },
      { name: 'memoryLoad', config: { workingSetBytes: (ramMiB - 48) * MiB, dirtyRateBytesPerSec: 0, seed: 3, fill: 'random' } },
      { name: 'memoryLoad', config: { workingSetBytes: 32 * MiB, dirtyRateBytesPerSec: 8e6, seed: 5, fill: 'halfRandom' } },
    ];
    await src.request('boot', { ramBytes: ramMiB * MiB, spec: { modules } });
    const rounds: RoundInfo[] = [];
    const s = await migrate({ src, dst, dstDataHost: net.mac('node2'), observer: new HeartbeatObserver(), options: { downtimeLimitMs: 300, timeoutMs: 300_000 }, onEvent: (e) => e.type === 'round' && rounds.push(e) });
    src.close();
    dst.close();
    if (!s.ok || !s.verified) throw new Error(`migration failed: ${JSON.stringify(s.error)}`);
    const r1 = rounds[0]!;
    const st = await net.stats('node1');
    return `| ${rate ?? 'none'} | ${ramMiB} MiB | ${r1.pagesSent} | ${r1.roundMs.toFixed(0)} | ${Math.round(r1.pagesSent / (r1.roundMs / 1000))} | ${((r1.wireBytes * 8) / r1.roundMs / 1e6).toFixed(3)} | ${s.rounds} | ${s.downtimeMs.toFixed(1)} | ${s.guestContinued} | ${st.retransmits} |`;
  } finally {
    await net.stop();
  }
}

const why = nativeUnavailable();
if (why) {
  console.log(`skipped: ${why}`);
  process.exit(0);
}
buildNative();
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args.splice(i, 2)[1]! : dflt;
};
const rates = opt('rates', 'none,1gbit').split(',');
const passes = Number(opt('passes', '3'));
const bandwidth = Number(opt('bandwidth', '0')) || undefined;
const lossPct = Number(opt('loss', '0'));
const ram = Number(args[0] ?? 512);
if (args.includes('--migrate')) {
  args.splice(args.indexOf('--migrate'), 1);
  const mram = Number(args[0] ?? 512);
  console.log('| shaping | guest RAM | round 1 pages | round 1 ms | pages/s | stream Gb/s | rounds | downtime ms | guest continued | retransmits |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (let i = 0; i < passes; i++) for (const r of rates) console.log(await migrateOnce(mram, r === 'none' ? undefined : r));
} else {
  console.log('| shaping | guest RAM | pages | ms | pages/s | stream Gb/s | page data Gb/s |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rates) console.log(await once(ram, passes, r === 'none' ? undefined : r, bandwidth, lossPct));
}
