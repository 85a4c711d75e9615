/**
 * Real peers: the service network bridged to one end of a veth pair whose
 * other end lives in a network namespace of its own (10.77.0.1/24). Debian's
 * iputils `ping` and iperf 2 (`iperf -s -u`) run in the namespace and talk
 * to a simulated guest (10.77.0.2) — before, during and after a live
 * migration of that guest from node17 to node42.
 *
 * Needs root (namespaces, packet capture), ip, ping, iperf and the 'pcap'
 * package; skips with the reason otherwise. Only the namespace's own
 * addresses are used. The namespace (with its veth pair) and every process
 * started here are removed in afterAll, whatever happened.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../src/engine/migration.js';
import { HeartbeatObserver } from '../src/sim/guest/observer.js';
import { bridgeSupport } from '../src/sim/network/bridge.js';
import { ServiceNetwork } from '../src/sim/network/server.js';
import { type NetNodes, readNet, startNetNodes, until } from './networkHelpers.js';

const NS = `bmns${process.pid}`;
const HOST_IF = `bmh${process.pid}`.slice(0, 15);
const NS_IF = `bmn${process.pid}`.slice(0, 15);
const PEER_IP = '10.77.0.1';
const GUEST_IP = '10.77.0.2';

function missing(): string | null {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, packet capture)';
  for (const tool of ['ip', 'ping', 'iperf']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `'${tool}' is not installed (Debian: iproute2, iputils-ping, iperf)`;
  }
  const b = bridgeSupport();
  if (!b.ok) return b.reason;
  return null;
}
const skipReason = missing();
if (skipReason) console.warn(`real-peer network tests skipped: ${skipReason}`);

function sh(args: string[]): void {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr.trim() || `exit ${r.status}`}`);
}

/** A process in the namespace; its output collected. */
interface NsProc {
  child: ChildProcess;
  out(): string;
  exited: Promise<number | null>;
}
const procs: NsProc[] = [];
function inNs(cmd: string[]): NsProc {
  const child = spawn('ip', ['netns', 'exec', NS, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const p: NsProc = { child, out: () => out, exited: new Promise((r) => child.once('exit', (c) => r(c))) };
  procs.push(p);
  return p;
}

/** `ping -c N -i 0.01` in the namespace: transmitted, received, and the sequence numbers answered. */
async function ping(count: number, ip = GUEST_IP): Promise<{ transmitted: number; received: number; seqs: number[]; out: string }> {
  const p = inNs(['ping', '-n', '-c', String(count), '-i', '0.01', '-W', '1', ip]);
  await p.exited;
  const out = p.out();
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  if (!m) throw new Error(`unexpected ping output: ${out}`);
  const seqs = [...out.matchAll(/icmp_seq=(\d+)/g)].map((x) => Number(x[1]));
  return { transmitted: Number(m[1]), received: Number(m[2]), seqs, out };
}

/** Final report lines of `iperf -s -u -y C`: ...,interval,bytes,bps,jitter,lost,total,pct,outOfOrder. */
function iperfReports(out: string): Array<{ bytes: number; lost: number; total: number; outOfOrder: number }> {
  return out
    .split('\n')
    .map((l) => l.trim().split(','))
    .filter((f) => f.length >= 14)
    .map((f) => ({ bytes: Number(f[7]), lost: Number(f[10]), total: Number(f[11]), outOfOrder: Number(f[13]) }));
}

let net: ServiceNetwork | null = null;
let nodes: NetNodes | null = null;
/** Every frame the switch sent into the namespace: (ethertype, source MAC). */
const seen: Array<{ type: number; src: string; dummy: boolean }> = [];
let monitor: { close(): void } | null = null;

describe.skipIf(skipReason !== null)('real peers in a network namespace', () => {
  beforeAll(async () => {
    sh(['ip', 'netns', 'add', NS]);
    sh(['ip', 'link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', NS_IF, 'netns', NS]);
    sh(['ip', '-n', NS, 'addr', 'add', `${PEER_IP}/24`, 'dev', NS_IF]);
    sh(['ip', '-n', NS, 'link', 'set', 'lo', 'up']);
    sh(['ip', '-n', NS, 'link', 'set', NS_IF, 'up']);
    // The host end is a plain wire: no addresses, no IPv6 chatter of its own.
    sh(['sysctl', '-qw', `net.ipv6.conf.${HOST_IF}.disable_ipv6=1`]);
    sh(['ip', 'link', 'set', HOST_IF, 'up']);
    net = await ServiceNetwork.start({ ports: ['node17', 'node42'], bridges: [HOST_IF] });
    // A second capture on the host end sees what the bridge injects (outgoing): the test's eye on the wire.
    const pcap = createRequire(import.meta.url)('pcap') as { createSession(i: string, o: object): { on(e: string, cb: (p: { buf: Buffer; header: Buffer }) => void): void; close(): void } };
    const nsMac = /link\/ether ([0-9a-f:]+)/.exec(spawnSync('ip', ['-n', NS, 'link', 'show', NS_IF], { encoding: 'utf8' }).stdout)![1]!.replace(/:/g, '');
    const s = pcap.createSession(HOST_IF, { buffer_timeout: 0, snap_length: 128 });
    s.on('packet', (p) => {
      const len = p.header.readUInt32LE(8);
      const f = p.buf.subarray(0, len);
      if (f.subarray(6, 12).toString('hex') === nsMac) return; // the namespace's own frames
      seen.push({ type: f.readUInt16BE(12), src: f.subarray(6, 12).toString('hex'), dummy: f.includes('baremig dummy') });
    });
    monitor = s;
  });

  afterAll(async () => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    await nodes?.stop();
    monitor?.close();
    net?.close();
    spawnSync('ip', ['netns', 'del', NS]);
    spawnSync('ip', ['link', 'del', HOST_IF]);
  });

  it('real ping and iperf -s -u talk to a guest (Linux-habit driver and FreeBSD-habit driver)', async () => {
    const server = inNs(['iperf', '-s', '-u', '-y', 'C', '-p', '5002']);
    const pair = await startNetNodes([
      {
        name: 'nodeL',
        port: await net!.addPort('nodeL'),
        boot: { modules: [{ name: 'nic', config: { personality: 'linux', mac: '52:54:00:77:00:0a' } }, { name: 'netApp', config: { ip: '10.77.0.10', iperf: { dst: PEER_IP, port: 5002, rateBps: 4e6, length: 1000, durationMs: 1000, startDelayMs: 200 } } }] },
      },
      { name: 'nodeB', port: await net!.addPort('nodeB'), boot: { modules: [{ name: 'nic', config: { personality: 'bsd', mac: '52:54:00:77:00:0b' } }, { name: 'netApp', config: { ip: '10.77.0.11' } }] } },
    ]);
    try {
      for (const ip of ['10.77.0.10', '10.77.0.11']) {
        const r = await ping(20, ip);
        expect(r.received, r.out).toBe(20);
        expect(r.seqs).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      }
      const c = await pair.client('nodeL');
      const v = await until('stream finished', async () => {
        const x = await readNet(c);
        return x?.iperf.state === 'done' ? x : null;
      });
      await until('iperf server report', async () => iperfReports(server.out()).length > 0 || null);
      const [rep] = iperfReports(server.out());
      // ~500 datagrams in 1 s, all counted by the real server (the FIN too, bytes and all); its report reached the guest.
      expect(v.iperf.sent).toBeGreaterThan(400);
      expect(rep).toEqual({ bytes: (v.iperf.sent + 1) * 1000, lost: 0, total: v.iperf.sent + 1, outOfOrder: 0 });
      expect(v.iperf.report).toMatchObject({ datagrams: v.iperf.sent + 1, lost: 0, bytes: (v.iperf.sent + 1) * 1000 });
    } finally {
      await pair.stop();
    }
  });

  it('real ping and iperf -s -u follow the guest through a live migration', async () => {
    seen.length = 0;
    const server = inNs(['iperf', '-s', '-u', '-y', 'C', '-p', '5001']);
    nodes = await startNetNodes([
      {
        name: 'node17',
        port: net!.endpoint('node17'),
        boot: {
          modules: [
            { name: 'heartbeat', config: { periodNs: 1_000_000 } },
            { name: 'nic', config: { personality: 'linux', mac: '52:54:00:77:00:02' } },
            // 2 Mbit/s of 1000-byte datagrams (250/s) for 6 s: before, during and after the migration.
            { name: 'netApp', config: { ip: GUEST_IP, iperf: { dst: PEER_IP, rateBps: 2e6, length: 1000, durationMs: 6000, startDelayMs: 300 } } },
          ],
        },
      },
      { name: 'node42', port: net!.endpoint('node42') },
    ]);
    const src = await nodes.client('node17');
    const dst = await nodes.client('node42');

    // Before: every echo answered, in order.
    const before = await ping(20);
    expect(before.transmitted).toBe(20);
    expect(before.received).toBe(20);
    expect(before.seqs).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const guestMac = '525400770002';
    expect(net!.sw.lookup([0x52, 0x54, 0, 0x77, 0, 2])).toBe('node17');
    await until('stream under way', async () => ((await readNet(src))?.iperf.sent ?? 0) > 100).catch(async (e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(await readNet(src))} switch ${JSON.stringify(net!.sw.stats())}`);
    });

    // During: 3 s of ping at 100/s while the guest moves.
    const during = ping(300);
    during.catch(() => {}); // awaited below; a failed migration must not leave it unhandled
    await new Promise((r) => setTimeout(r, 800));
    const s = await migrate({ src, dst, dstDataHost: '127.0.0.1', observer: new HeartbeatObserver(), options: { downtimeLimitMs: 100 } });
    expect(s.error).toBeUndefined();
    expect(s.ok).toBe(true);
    const d = await during;
    const nic = s.devices.find((x) => x.kind === 'rtl8169');
    const pauseMs = Math.max(s.downtimeMs, s.guestDowntimeMs ?? 0);
    console.info(`migration: downtime ${s.downtimeMs.toFixed(1)} ms (guest saw ${s.guestDowntimeMs?.toFixed(1)} ms), NIC restore ${nic?.restoreMs.toFixed(1)} ms with ${nic?.extra?.['dummyFrames']} dummy frames; ping during: ${d.received}/${d.transmitted}`);
    // Replies lost: what 100 pings/s lose in the pause, plus the one in flight at each edge.
    expect(d.transmitted - d.received).toBeLessThanOrEqual(Math.ceil(pauseMs / 10) + 3);
    expect(new Set(d.seqs).size).toBe(d.seqs.length); // no duplicates
    expect(net!.sw.lookup([0x52, 0x54, 0, 0x77, 0, 2])).toBe('node42');
    expect(net!.sw.stats().moves).toBeGreaterThanOrEqual(1);

    // After: the guest on node42 answers every echo, and its stream goes on.
    const after = await ping(20);
    // Rarely (about 1 run in 30) a reply went missing here; what to look at if it does.
    const why = after.received === 20 ? '' : JSON.stringify({ ping: after.out, nic: nic?.extra, switch: net!.sw.stats(), at: net!.sw.lookup([0x52, 0x54, 0, 0x77, 0, 2]), guestNet: await readNet(dst) });
    expect(after.received, why).toBe(20);
    const v = await until('stream finished on node42', async () => {
      const x = await readNet(dst);
      return x?.iperf.state === 'done' ? x : null;
    }, 15_000);
    expect(v.iperf.report).not.toBeNull();
    await until('iperf server report', async () => iperfReports(server.out()).length > 0 || null);
    const [rep] = iperfReports(server.out());
    console.info(`iperf -s -u: ${rep!.total} datagrams, ${rep!.lost} lost, ${rep!.outOfOrder} out of order; guest sent ${v.iperf.sent}`);
    // The server counted the whole stream, begun on node17 and finished on node42 (the FIN counts as one).
    expect(rep!.total).toBe(v.iperf.sent + 1);
    expect(rep!.outOfOrder).toBe(0);
    // Datagrams lost: those in flight at the switch-over, far fewer than the pause would have held.
    expect(rep!.lost).toBeLessThanOrEqual(Math.ceil((pauseMs / 1000) * 250) + 3);
    expect(v.iperf.report).toMatchObject({ datagrams: rep!.total, lost: rep!.lost });
    // No dummy frame of the NIC restore ever reached the namespace; the guest's frames came from one MAC.
    expect(seen.filter((f) => f.dummy || f.type === 0x88b5)).toEqual([]);
    expect(seen.filter((f) => f.type === 0x0800 && f.src !== guestMac)).toEqual([]);
  });
});
