/**
 * The RTL8169 restore announces the guest's MAC from the destination (a
 * gratuitous RARP, as QEMU's announce-self does), independently of the guest
 * OS: a tap on the switch sees it arrive on node42's port right when the
 * restore ends — before the guest runs there, so before any frame of the
 * guest itself — and the switch moves the guest's MAC to node42 on it, before
 * the guest's own gratuitous ARPs. Pings sent after that reach node42 and are
 * answered as soon as the guest runs.
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

const GUEST_MAC = [0x52, 0x54, 0x00, 0x00, 0x00, 0x17];
const ETHERTYPE_RARP = 0x8035;
const ETHERTYPE_ARP = 0x0806;

interface Seen {
  ms: number;
  port: string;
  type: number;
  frame: Uint8Array;
}

describe('MAC announcement by the NIC reconstructor', () => {
  it.each(['linux', 'bsd'] as const)('node42 announces the guest (%s driver) before the guest runs; the switch moves the MAC on it', async (personality) => {
    const moves: Array<{ ms: number; mac: string; from: string; to: string }> = [];
    net = await ServiceNetwork.start({ ports: ['node17', 'node42', 'peer'], onMove: (mac, from, to) => moves.push({ ms: performance.now(), mac, from, to }) });
    const seen: Seen[] = [];
    const receive = net.sw.receive.bind(net.sw);
    net.sw.receive = (from: number, frame: Uint8Array) => {
      if (GUEST_MAC.every((b, i) => frame[6 + i] === b)) {
        seen.push({ ms: performance.now(), port: net!.sw.portName(from) ?? `#${from}`, type: (frame[12]! << 8) | frame[13]!, frame: Uint8Array.from(frame) });
      }
      receive(from, frame);
    };
    nodes = await startNetNodes([
      {
        name: 'node17',
        port: net.endpoint('node17'),
        boot: {
          modules: [
            { name: 'heartbeat', config: { periodNs: 1_000_000 } },
            { name: 'nic', config: { personality, mac: '52:54:00:00:00:17' } },
            { name: 'netApp', config: { ip: '10.88.0.17' } },
          ],
        },
      },
      { name: 'node42', port: net.endpoint('node42') },
      {
        name: 'peer',
        port: net.endpoint('peer'),
        boot: {
          modules: [
            { name: 'nic', config: { personality: 'linux', mac: '52:54:00:00:00:99' } },
            { name: 'netApp', config: { ip: '10.88.0.99', ping: { dst: '10.88.0.17', intervalMs: 10, count: 100_000 } } },
          ],
        },
      },
    ]);
    const src = await nodes.client('node17');
    const dst = await nodes.client('node42');
    const peer = await nodes.client('peer');
    await until('pings answered', async () => ((await readNet(peer))?.ping.received ?? 0) > 20);
    let resumeAt = 0;
    const s = await migrate({
      src,
      dst,
      dstDataHost: '127.0.0.1',
      observer: new HeartbeatObserver(),
      options: { downtimeLimitMs: 100 },
      onPhase: (p) => {
        if (p === 'resume') resumeAt = performance.now();
      },
    });
    expect(s.error).toBeUndefined();
    const nic = s.devices.find((d) => d.kind === 'rtl8169')!;
    expect(nic.extra?.['announced']).toBe(1);
    // The guest's own gratuitous ARPs after it noticed the pause.
    await until('the guest announced itself from node42', async () => seen.some((f) => f.port === 'node42' && f.type === ETHERTYPE_ARP), 5_000);

    const fromDst = seen.filter((f) => f.port === 'node42');
    // Exactly one announcement, the first frame with the guest's MAC on node42's port, before the guest ran.
    const rarp = fromDst.filter((f) => f.type === ETHERTYPE_RARP);
    expect(rarp).toHaveLength(1);
    expect(fromDst[0]!.type).toBe(ETHERTYPE_RARP);
    expect(rarp[0]!.ms).toBeLessThan(resumeAt);
    // A broadcast RARP reverse request for the guest's MAC (sender and target), no addresses.
    const f = rarp[0]!.frame;
    expect(Array.from(f.subarray(0, 6))).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect(Array.from(f.subarray(14, 22))).toEqual([0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x03]);
    expect(Array.from(f.subarray(22, 28))).toEqual(GUEST_MAC);
    expect(Array.from(f.subarray(32, 38))).toEqual(GUEST_MAC);
    expect(f.length).toBeGreaterThanOrEqual(60);
    // The source never sent one.
    expect(seen.filter((x) => x.port === 'node17' && x.type === ETHERTYPE_RARP)).toHaveLength(0);
    // The switch moved the MAC once, to node42, on the announcement: before the guest's first ARP there.
    const guestMoves = moves.filter((m) => m.mac === '52:54:00:00:00:17');
    expect(guestMoves).toHaveLength(1);
    expect([guestMoves[0]!.from, guestMoves[0]!.to]).toEqual(['node17', 'node42']);
    const firstArp = fromDst.find((x) => x.type === ETHERTYPE_ARP)!;
    expect(guestMoves[0]!.ms).toBeLessThanOrEqual(rarp[0]!.ms + 1);
    expect(guestMoves[0]!.ms).toBeLessThan(firstArp.ms);
    expect(net.sw.lookup(GUEST_MAC)).toBe('node42');
    // And the guest keeps answering on node42.
    const before = (await readNet(peer))!.ping.received;
    await until('pings answered on node42', async () => ((await readNet(peer))?.ping.received ?? 0) > before + 20);
  });
});
