/**
 * `baremig migrate` (the CLI as a child process) over l2:// between two
 * simulated nodes whose agent is the native one: the C core loaded as a
 * Node-API addon (hypervisor/hosted/napi_hal.c) in front of the node's
 * Machine, its device bus with the 8254, the 8259 pair and an RTL8169 on a
 * service network, and its migration link an AF_PACKET socket on mig0 in the
 * node's namespace. The guest takes a 1000 Hz tick through the chips and
 * drives the NIC; a peer node (TypeScript agent) on the same switch pings it
 * every 10 ms before, through and after the migration.
 * The migration moves memory, vCPU and device state (captured and restored
 * through the native agents' IoPrograms and shadows), verifies, and on the
 * destination the tick runs at 1000 Hz, jiffies follow elapsed time and the
 * peer's pings are answered again.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/protocol/client.js';
import { type SimNodeHandle, startNode } from '../../src/sim/cluster.js';
import { readHeartbeat } from '../../src/sim/guest/observer.js';
import { ServiceNetwork } from '../../src/sim/network/server.js';
import { readNet, until } from '../networkHelpers.js';
import { readTimer, tickRate } from '../timerHelpers.js';
import { MiB, type NativeNet, REPO, buildNative, nativeNet, nativeUnavailable } from './targets.js';

const run = promisify(execFile);
const MAIN = join(REPO, 'src/cli/main.ts');
const why = nativeUnavailable();
if (why) console.log(`native device migration skipped: ${why}`);

const HZ = 1000;

let net: NativeNet | null = null;
let svc: ServiceNetwork | null = null;
let peer: SimNodeHandle | null = null;
const clients: AgentClient[] = [];
const dir = mkdtempSync(join(tmpdir(), 'baremig-devices-native-'));
afterAll(async () => {
  for (const c of clients.splice(0)) c.close();
  peer?.kill('SIGKILL');
  await peer?.exited;
  await net?.stop();
  svc?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(why !== null)('baremig migrate between native agents in simulated nodes: devices move', () => {
  it('8254 + 8259 (1000 Hz tick) and RTL8169: verified, the tick runs at HZ on the destination, the NIC answers pings', async () => {
    buildNative();
    svc = await ServiceNetwork.start({ ports: ['node1', 'node2', 'peer'] });
    net = await nativeNet(2);
    const devices = ['pic', 'pit'];
    await Promise.all([
      net.startAgent('node1', { ram: '128M', devices, network: { switch: svc.endpoint('node1'), autonegMs: 20 } }),
      net.startAgent('node2', { ram: '128M', devices, network: { switch: svc.endpoint('node2'), autonegMs: 20 } }),
    ]);
    const PINGS = 3000; // 30 s of pings: they outlast the test
    peer = await startNode({
      name: 'peer',
      host: '127.0.0.1',
      port: 0,
      ramCapacity: 64 * MiB,
      keyHex: net.key.toString('hex'),
      devices: [],
      network: { switch: svc.endpoint('peer'), autonegMs: 20 },
      boot: {
        ramBytes: 32 * MiB,
        spec: {
          modules: [
            { name: 'nic', config: { personality: 'bsd', mac: '52:54:00:00:00:99' } },
            { name: 'netApp', config: { ip: '10.88.0.99', ping: { dst: '10.88.0.1', intervalMs: 10, count: PINGS } } },
          ],
        },
      },
    });
    const peerClient = await AgentClient.connect(peer.url, { node: 'peer', key: net.key });
    clients.push(peerClient);
    const connect = async (n: string) => {
      const c = await AgentClient.connect(net!.url(n), { node: n, key: net!.key, connectTimeoutMs: 10_000 });
      clients.push(c);
      return c;
    };
    const [src, dst] = [await connect('node1'), await connect('node2')];
    const st = await src.request('state', {});
    expect(st.devices.map((d) => d.kind)).toEqual(['pic', 'pit', 'rtl8169']);
    // the guest is booted over the protocol (a real node boots its own OS)
    await src.request('boot', {
      ramBytes: 64 * MiB,
      spec: {
        modules: [
          { name: 'heartbeat', config: { periodNs: 1_000_000 } },
          { name: 'timer', config: { hz: HZ } },
          { name: 'memoryLoad', config: { workingSetBytes: 8 * MiB, dirtyRateBytesPerSec: 2e6, seed: 5, fill: 'halfRandom' } },
          { name: 'nic', config: { personality: 'linux', mac: '52:54:00:00:00:01' } },
          { name: 'netApp', config: { ip: '10.88.0.1' } },
        ],
      },
    });
    await until('pings answered on the source', async () => ((await readNet(peerClient))?.ping.received ?? 0) > 20);
    const warm = await readTimer(src);
    expect(Number(warm.delivered)).toBeGreaterThan(100); // the tick runs through the real chips
    const nodesFile = join(dir, 'nodes.yaml');
    const lines = ['cluster:', `  keyFile: ${net.keyFile}`, 'nodes:'];
    for (const n of ['node1', 'node2']) lines.push(`  ${n}:`, `    agent: ${net.url(n)}`, '    ram: 128M');
    writeFileSync(nodesFile, `${lines.join('\n')}\n`);
    // The peer pings on through the migration: frames that reach the destination
    // NIC after its restore (RX open, the switch told by the announcement) land in
    // guest RAM before the guest runs, which is why the engine takes the memory
    // digests before the device restore (docs/design-notes.md).
    const beforeMigrate = await readTimer(src);
    let stdout = '';
    let stderr = '';
    let code = 0;
    try {
      ({ stdout, stderr } = await run(process.execPath, ['--import', 'tsx', MAIN, '--nodes-file', nodesFile, 'migrate', 'node1', 'node2', '--json', '--downtime-limit', '100', '--timeout', '60s'], { cwd: REPO, timeout: 90_000 }));
    } catch (e) {
      ({ code, stdout, stderr } = e as { code: number; stdout: string; stderr: string });
    }
    const j = JSON.parse(stdout) as Record<string, unknown> & { devices: Array<{ kind: string; programs: number; restoreMs: number; extra?: Record<string, number> }> };
    expect(j.error, `${JSON.stringify(j.error)}\n${stderr}`).toBeUndefined();
    expect(code).toBe(0);
    expect(j).toMatchObject({ ok: true, verified: true, guestContinued: true, source: 'node1', destination: 'node2' });
    expect(j.devices.map((d) => d.kind).sort()).toEqual(['pic', 'pit', 'rtl8169']);
    expect(j.devices.find((d) => d.kind === 'rtl8169')!.extra?.dummyFrames).toBeGreaterThan(0);
    expect((await src.request('state', {})).guest).toBe('released');
    expect((await dst.request('state', {})).guest).toBe('running');
    // the tick on the destination: the restored 8254 counts, the restored 8259 passes IRQ0
    const { rate, b } = await tickRate(dst);
    expect(rate).toBeGreaterThan(HZ * 0.9);
    expect(rate).toBeLessThan(HZ * 1.1);
    // jiffies across the migration follow elapsed guest time
    const expected = ((b.lastTickNs - beforeMigrate.lastTickNs) * HZ) / 1e9;
    const got = Number(b.jiffies - beforeMigrate.jiffies);
    expect(Math.abs(got - expected)).toBeLessThanOrEqual(Math.max(1, (j.downtimeMs as number) / 100) + 2);
    // no interrupt stuck in service, in the destination native agent's own shadow of the 8259
    const sh = (await dst.request('shadow', {})).shadow.pic as { master: { isr: number }; slave: { isr: number } };
    expect(sh.master.isr & ~0x01).toBe(0);
    expect(sh.slave.isr).toBe(0);
    // the heartbeat goes on
    const hb = (await readHeartbeat(dst))!.counter;
    await new Promise((r) => setTimeout(r, 100));
    expect((await readHeartbeat(dst))!.counter).toBeGreaterThan(hb + 20n);
    // the NIC on the destination: the peer's pings are answered again
    const p0 = (await readNet(peerClient))!.ping.received;
    await until('pings answered on the destination', async () => ((await readNet(peerClient))?.ping.received ?? 0) > p0 + 20, 10_000);
    // Unanswered: what 100 pings/s lose in the pause, plus the one in flight at each edge and the last one sent.
    const lost = (await readNet(peerClient))!.ping;
    expect(lost.sent - lost.received).toBeLessThanOrEqual(Math.ceil(Math.max(j.downtimeMs as number, (j.guestDowntimeMs as number) ?? 0) / 10) + 3);
    const p = (await readNet(peerClient))!;
    expect(p.ping.duplicates).toBe(0);
    const [s1, s2] = [await net.stats('node1'), await net.stats('node2')];
    expect(s1.hostErrors + s2.hostErrors).toBe(0);
    console.log(
      `native device migration: ${j.rounds} rounds, ${j.totalMs} ms total, downtime ${j.downtimeMs} ms (guest saw ${j.guestDowntimeMs} ms); ` +
        `devices ${j.devices.map((d) => `${d.kind} restore ${d.restoreMs.toFixed(1)} ms/${d.programs} program(s)`).join(', ')}; ` +
        `tick on the destination ${rate.toFixed(1)} Hz, jiffies ${got} for ${expected.toFixed(1)} expected; pings ${p.ping.received}/${p.ping.sent} answered so far`,
    );
  }, 120_000);
});
