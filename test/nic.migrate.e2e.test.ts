/**
 * Issue 4's end-to-end bar, for both driver personalities: a guest that
 * streams UDP to a peer guest and is pinged by it moves node17 → node42 on
 * the service network. Afterwards TX and RX go on: nothing lost beyond what
 * the pause explains, nothing duplicated or reordered, no watchdog reset
 * (the TX ring never stalls), and no dummy frame of the NIC restore enters
 * the switch (a tap on the switch's input looks for them).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { migrate } from '../src/engine/migration.js';
import { HeartbeatObserver } from '../src/sim/guest/observer.js';
import { ServiceNetwork } from '../src/sim/network/server.js';
import { type NetNodes, readNet, startNetNodes, until } from './networkHelpers.js';

let net: ServiceNetwork | null = null;
let nodes: NetNodes | null = null;
afterEach(async () => {
  await nodes?.stop();
  nodes = null;
  net?.close();
  net = null;
});

const DUMMY_MARK = Buffer.from('baremig dummy');

describe.each(['linux', 'bsd'] as const)('RTL8169 migration with the %s-habit driver', (personality) => {
  it('TX and RX continue after node17 → node42: no loss beyond the pause, no duplicates, in order, no dummy frame on the network', async () => {
    net = await ServiceNetwork.start({ ports: ['node17', 'node42', 'peer'] });
    let dummyFramesSeen = 0;
    let framesSeen = 0;
    const receive = net.sw.receive.bind(net.sw);
    net.sw.receive = (from: number, frame: Uint8Array) => {
      framesSeen++;
      if (Buffer.from(frame.buffer, frame.byteOffset, frame.length).includes(DUMMY_MARK)) dummyFramesSeen++;
      receive(from, frame);
    };
    const PINGS = 150;
    nodes = await startNetNodes([
      {
        name: 'node17',
        port: net.endpoint('node17'),
        devices: ['pic', 'pit'],
        boot: {
          modules: [
            { name: 'timer', config: { hz: 250 } },
            { name: 'heartbeat', config: { periodNs: 1_000_000 } },
            { name: 'nic', config: { personality, mac: '52:54:00:00:00:17' } },
            { name: 'netApp', config: { ip: '10.88.0.17', iperf: { dst: '10.88.0.99', rateBps: 2e6, length: 1000, durationMs: 2500, startDelayMs: 100 } } },
          ],
        },
      },
      { name: 'node42', port: net.endpoint('node42'), devices: ['pic', 'pit'] },
      {
        name: 'peer',
        port: net.endpoint('peer'),
        boot: {
          modules: [
            { name: 'nic', config: { personality: personality === 'linux' ? 'bsd' : 'linux', mac: '52:54:00:00:00:99' } },
            { name: 'netApp', config: { ip: '10.88.0.99', sink: { port: 5001 }, ping: { dst: '10.88.0.17', intervalMs: 10, count: PINGS } } },
          ],
        },
      },
    ]);
    const src = await nodes.client('node17');
    const dst = await nodes.client('node42');
    const peer = await nodes.client('peer');
    await until('stream running', async () => ((await readNet(peer))?.sink.received ?? 0) > 50);
    const s = await migrate({ src, dst, dstDataHost: '127.0.0.1', observer: new HeartbeatObserver(), options: { downtimeLimitMs: 100 } });
    expect(s.error).toBeUndefined();
    expect(s.ok).toBe(true);
    const nic = s.devices.find((d) => d.kind === 'rtl8169')!;
    expect(nic.extra?.dummyFrames).toBeGreaterThan(0);
    const atResume = (await readNet(peer))!.sink.received;
    const done = await until(
      'stream and pings finished',
      async () => {
        const [g, p] = await Promise.all([readNet(dst), readNet(peer)]);
        return g?.iperf.state === 'done' && p?.ping.sent === PINGS ? { g, p } : null;
      },
      15_000,
    );
    await new Promise((r) => setTimeout(r, 100)); // last replies in flight
    const g = (await readNet(dst))!;
    const p = (await readNet(peer))!;
    const pauseLoss = Math.ceil(s.downtimeMs / 10) + 3; // 10 ms ping interval, plus ARP and edge slack
    // TX from the migrated guest continues: the peer's sink keeps counting after resume, in order, no duplicates.
    expect(p.sink.received).toBeGreaterThan(atResume + 100);
    expect(p.sink.duplicates).toBe(0);
    expect(p.sink.outOfOrder).toBe(0);
    expect(p.sink.missing).toBeLessThanOrEqual(Math.ceil((s.downtimeMs / 1000) * 2000) + 3);
    expect(p.sink.unique).toBe(g.iperf.sent - p.sink.missing);
    // RX on the migrated guest continues: the peer's pings are answered, none twice.
    expect(p.ping.duplicates).toBe(0);
    expect(p.ping.outOfOrder).toBe(0);
    expect(p.ping.sent - p.ping.received).toBeLessThanOrEqual(pauseLoss);
    // No watchdog reset: the TX ring never filled up (a stalled NIC index would fill it).
    expect(g.counters.txRingFull).toBe(0);
    // The restore's dummy frames stayed inside the destination NIC (MAC loopback).
    expect(framesSeen).toBeGreaterThan(500);
    expect(dummyFramesSeen).toBe(0);
    expect(done.g.iperf.sent).toBeGreaterThan(0);
  });
});
