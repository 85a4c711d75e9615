/**
 * `baremig experiment iperf-downtime`: the original system's iperf figure,
 * with real tools.
 *
 * A network namespace holds the real peers (10.77.6.1/24): iperf 2 as a UDP
 * server printing a report every interval, and iputils ping at 100 requests
 * per second. One end of a veth pair lives there; the other is bridged into
 * the simulated service network (a switch process capturing and injecting
 * frames with libpcap). node17 and node42 (one process each) have their
 * RTL8169 on that switch. The guest on node17 (RAM half pseudo-random, half
 * zero, a seeded memory load, a heartbeat) streams iperf2-format UDP to the
 * server and answers the pings. After a warm-up it is live-migrated to node42
 * over a page stream capped at the link rate (the source agent's token
 * bucket), its NIC state included. iperf's interval reports, ping's replies
 * and the engine's events are all stamped on one clock (wall-clock ms).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BaremigError } from '../errors.js';
import { migrate } from '../engine/migration.js';
import type { MigrationSummary } from '../engine/types.js';
import { AgentClient } from '../protocol/client.js';
import { type SimNodeHandle, startNode } from '../sim/cluster.js';
import { heartbeat } from '../sim/guest/heartbeat.js';
import { BOOT_BLOCK_ADDR, MODULE_AREA_ADDR } from '../sim/guest/layout.js';
import { type NetView, netStackModule, nicModule, parseNetRegion } from '../sim/guest/net/index.js';
import { BOOT_BLOCK_BYTES, GuestOs, type GuestSpec } from '../sim/guest/os.js';
import { HeartbeatObserver } from '../sim/guest/observer.js';
import { startSwitchProcess } from '../sim/network/process.js';
import { type IperfOutage, type Phases, type PingOutage, type PrecopyAgainstLink, type StampedEvent, iperfOutage, meanThroughput, phasesOf, pingOutage, precopyAgainstLink } from './analysis.js';
import { type IperfSeries, type PingSeries, anchorIperf, parsePing } from './parse.js';
export { IPERF_DOWNTIME_DEFAULTS } from './defaults.js';
import { type NsProcess, Cleanup, createNamespace, realPeersMissing, sleep, spawnInNamespace, waitFor, wallMs } from './system.js';

const MiB = 1024 * 1024;
export const PEER_IP = '10.77.6.1';
export const GUEST_IP = '10.77.6.2';
const GUEST_MAC = '52:54:00:77:06:02';
const IPERF_PORT = 5001;

export interface IperfDowntimeOptions {
  ramBytes: number;
  /** Migration link rate, bytes/s (the page stream's token bucket). */
  linkBytesPerSec: number;
  /** The guest's memory load, bytes/s of pages dirtied at random. */
  dirtyRateBytesPerSec: number;
  /** The guest's UDP stream, payload bits/s. */
  streamBitsPerSec: number;
  datagramBytes: number;
  downtimeLimitMs: number;
  warmupMs: number;
  afterMs: number;
  /** iperf's report interval, s. */
  iperfIntervalS: number;
  /** ping's request interval, ms. */
  pingIntervalMs: number;
  seed: number;
  outDir: string;
  progress: (line: string) => void;
  signal?: AbortSignal;
}


export interface IperfDowntimeRun {
  options: Omit<IperfDowntimeOptions, 'progress' | 'signal'>;
  startedWallMs: number;
  summary: MigrationSummary;
  events: StampedEvent[];
  phases: Phases;
  iperf: IperfSeries;
  ping: PingSeries;
  pingOutage: PingOutage;
  iperfOutage: IperfOutage;
  precopy: PrecopyAgainstLink | null;
  /** Mean stream throughput, bit/s: warm-up, pre-copy, after the migration. */
  throughput: { warmup: number | null; precopy: number | null; after: number | null };
  /** The guest's network counters on node42 at the end. */
  guestNet: NetView | null;
  /** MAC moves the switch logged (wall ms, from, to). */
  switchMoves: Array<{ wallMs: number; from: string; to: string }>;
  /** Raw tool output with arrival stamps. */
  raw: { iperf: NsProcess['lines']; ping: NsProcess['lines'] };
}

/** The guest: heartbeat, NIC driver, network stack with the iperf sender, and a memory load over the rest of RAM. */
export function iperfGuestSpec(o: Pick<IperfDowntimeOptions, 'ramBytes' | 'dirtyRateBytesPerSec' | 'streamBitsPerSec' | 'datagramBytes' | 'seed'>): GuestSpec {
  const page = (n: number) => Math.ceil(n / 4096) * 4096;
  const hb = { periodNs: 1_000_000 };
  const nic = { personality: 'linux' as const, mac: GUEST_MAC };
  const net = { ip: GUEST_IP, prefixLen: 24, iperf: { dst: PEER_IP, port: IPERF_PORT, length: o.datagramBytes, rateBps: o.streamBitsPerSec, startDelayMs: 200 } };
  const used = page(heartbeat.regionBytes(hb)) + page(nicModule.regionBytes(nic)) + page(netStackModule.regionBytes(net)) + 4096;
  const workingSetBytes = Math.floor((o.ramBytes - MODULE_AREA_ADDR - used) / 4096) * 4096;
  if (workingSetBytes < 16 * MiB) throw new BaremigError('USAGE', `--ram ${o.ramBytes} leaves no room for the guest's memory load`);
  return {
    modules: [
      { name: 'heartbeat', config: hb },
      { name: 'nic', config: nic },
      { name: 'netApp', config: net },
      { name: 'memoryLoad', config: { workingSetBytes, dirtyRateBytesPerSec: o.dirtyRateBytesPerSec, seed: o.seed, fill: 'halfRandom' } },
    ],
  };
}

async function readNet(c: AgentClient): Promise<NetView | null> {
  const boot = await c.request('memRead', { addr: BOOT_BLOCK_ADDR, len: BOOT_BLOCK_BYTES });
  const m = GuestOs.findModule(boot.data, 'netApp');
  if (!m) return null;
  return parseNetRegion((await c.request('memRead', { addr: m.base, len: 4096 })).data);
}

const fmtS = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export async function runIperfDowntime(o: IperfDowntimeOptions): Promise<IperfDowntimeRun> {
  const missing = realPeersMissing();
  if (missing) throw new BaremigError('USAGE', `iperf-downtime cannot run here: ${missing}`);
  const { progress: say, signal } = o;
  mkdirSync(o.outDir, { recursive: true });
  const cleanup = new Cleanup(say);
  const startedWallMs = wallMs();
  try {
    // ---- the peers' namespace and the service network bridged into it
    const ns = createNamespace(cleanup, { tag: String(process.pid), peerIp: PEER_IP, prefixLen: 24 });
    say(`namespace ${ns.name}: ${PEER_IP}/24 on ${ns.nsIf}; host end ${ns.hostIf} bridged into the service network`);
    const sw = await startSwitchProcess({ ports: ['node17', 'node42'], bridges: [ns.hostIf] });
    cleanup.add('switch', async () => {
      sw.kill('SIGTERM');
      const t = setTimeout(() => sw.kill('SIGKILL'), 2000);
      await sw.exited;
      clearTimeout(t);
    }, () => sw.kill('SIGKILL'));
    signal?.throwIfAborted();

    const iperf = spawnInNamespace(cleanup, ns, ['iperf', '-s', '-u', '-p', String(IPERF_PORT), '-i', String(o.iperfIntervalS), '-y', 'C', '-e']);

    // ---- the nodes: node17 boots the guest, node42 waits for it
    const key = randomBytes(32);
    const spec = iperfGuestSpec(o);
    say(`booting a ${(o.ramBytes / 2 ** 30).toFixed(2)} GiB guest on node17 (RAM half random, seed ${o.seed}; dirtying ${(o.dirtyRateBytesPerSec / 1e6).toFixed(1)} MB/s; UDP stream ${(o.streamBitsPerSec / 1e6).toFixed(1)} Mbit/s to ${PEER_IP}:${IPERF_PORT})`);
    const nodes: SimNodeHandle[] = [];
    cleanup.add('nodes', async () => {
      for (const n of nodes) n.kill('SIGKILL');
      await Promise.all(nodes.map((n) => n.exited));
    }, () => nodes.forEach((n) => n.kill('SIGKILL')));
    const common = { host: '127.0.0.1', port: 0, ramCapacity: o.ramBytes, keyHex: key.toString('hex'), devices: [] as string[] };
    const bootT = wallMs();
    const started = await Promise.allSettled([
      startNode({ ...common, name: 'node17', network: { switch: sw.ports.node17!, autonegMs: 20 }, boot: { ramBytes: o.ramBytes, spec } }, { startTimeoutMs: 300_000, logFile: join(o.outDir, 'node17.log') }),
      startNode({ ...common, name: 'node42', network: { switch: sw.ports.node42!, autonegMs: 20 } }, { startTimeoutMs: 60_000, logFile: join(o.outDir, 'node42.log') }),
    ]);
    for (const s of started) if (s.status === 'fulfilled') nodes.push(s.value);
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    say(`nodes up in ${fmtS(wallMs() - bootT)}`);
    const src = await AgentClient.connect(nodes[0]!.url, { node: 'node17', key });
    const dst = await AgentClient.connect(nodes[1]!.url, { node: 'node42', key });
    cleanup.add('agent connections', () => {
      src.close();
      dst.close();
    });

    // ---- the stream reaches the real iperf; then ping starts
    await waitFor('the first iperf interval report (is the guest streaming to the namespace?)', () => iperf.lines.some((l) => l.line.split(',').length >= 14), 30_000, signal);
    say(`iperf -s -u in ${ns.name} receives the guest's stream`);
    const ping = spawnInNamespace(cleanup, ns, ['ping', '-n', '-D', '-O', '-i', String(o.pingIntervalMs / 1000), GUEST_IP]);
    await waitFor('the first ping reply', () => ping.lines.some((l) => l.line.includes('bytes from')), 10_000, signal);
    say(`ping -i ${o.pingIntervalMs / 1000} gets replies; warming up for ${fmtS(o.warmupMs)}`);
    await sleep(o.warmupMs, signal);

    // ---- the migration, every event stamped
    const events: StampedEvent[] = [];
    let lastSay = 0;
    say(`migrating node17 → node42, page stream capped at ${((o.linkBytesPerSec * 8) / 1e9).toFixed(3)} Gbit/s, downtime limit ${o.downtimeLimitMs} ms`);
    const summary = await migrate({
      src,
      dst,
      dstDataHost: '127.0.0.1',
      observer: new HeartbeatObserver(),
      options: { bandwidth: o.linkBytesPerSec, downtimeLimitMs: o.downtimeLimitMs, ...(signal ? { signal } : {}) },
      onEvent: (event) => {
        const t = wallMs();
        events.push({ wallMs: t, event });
        if (event.type === 'phase' && event.phase !== 'precopy') say(`  ${fmtS(event.elapsedMs).padStart(7)}  ${event.phase}`);
        else if (event.type === 'round') say(`  ${fmtS(event.elapsedMs).padStart(7)}  round ${event.round}: ${(event.wireBytes / MiB).toFixed(1)} MiB in ${fmtS(event.roundMs)}, ${event.dirtyPages} pages dirty, expected downtime ${event.expectedDowntimeMs.toFixed(1)} ms`);
        else if (event.type === 'policy') say(`  ${fmtS(event.elapsedMs).padStart(7)}  policy ${event.action}: ${event.reason} (limit ${event.downtimeLimitMs.toFixed(0)} ms)`);
        else if (event.type === 'stream' && t - lastSay > 2000) {
          lastSay = t;
          say(`  ${fmtS(event.elapsedMs).padStart(7)}  round ${event.round}: ${(event.totalBytesSent / MiB).toFixed(0)} MiB sent, ${((event.rateBps * 8) / 1e6).toFixed(0)} Mbit/s, ${(event.progress * 100).toFixed(0)} %`);
        }
      },
    });
    const endWallMs = wallMs();
    if (summary.ok) say(`migrated: total ${fmtS(summary.totalMs)}, downtime ${summary.downtimeMs.toFixed(1)} ms (guest heartbeat saw ${summary.guestDowntimeMs?.toFixed(1) ?? '?'} ms); watching the stream for ${fmtS(o.afterMs)}`);
    else say(`migration failed: ${summary.error?.message}`);
    await sleep(o.afterMs, signal);

    const guestNet = await readNet(summary.ok ? dst : src).catch(() => null);
    await ping.stop('SIGINT');
    await iperf.stop('SIGINT');

    // ---- the series on one clock
    const phases = phasesOf(events, endWallMs);
    const iperfSeries = anchorIperf(iperf.lines, o.iperfIntervalS);
    const pingSeries = parsePing(ping.lines, o.pingIntervalMs);
    const from = phases.stopWallMs ?? endWallMs;
    const to = phases.commitWallMs ?? endWallMs;
    const switchMoves = [...sw.log().matchAll(/^(\S+) \S+ moved (\S+) -> (\S+)$/gm)].map((m) => ({ wallMs: Date.parse(m[1]!), from: m[2]!, to: m[3]! }));
    const { progress: _p, signal: _s, ...options } = o;
    return {
      options,
      startedWallMs,
      summary,
      events,
      phases,
      iperf: iperfSeries,
      ping: pingSeries,
      pingOutage: pingOutage(pingSeries.records, from, to),
      iperfOutage: iperfOutage(iperfSeries.intervals, o.datagramBytes, from, to),
      precopy: precopyAgainstLink(events, phases, o.linkBytesPerSec),
      throughput: {
        warmup: meanThroughput(iperfSeries.intervals, phases.startWallMs - o.warmupMs + 500, phases.startWallMs),
        precopy: phases.precopyStartWallMs !== null && phases.stopWallMs !== null ? meanThroughput(iperfSeries.intervals, phases.precopyStartWallMs, phases.stopWallMs) : null,
        after: meanThroughput(iperfSeries.intervals, to + 500, to + o.afterMs),
      },
      guestNet,
      switchMoves,
      raw: { iperf: iperf.lines, ping: ping.lines },
    };
  } catch (e) {
    if (signal?.aborted) throw new BaremigError('CANCELLED', 'experiment interrupted; namespace and processes removed');
    throw e;
  } finally {
    await cleanup.run();
  }
}
