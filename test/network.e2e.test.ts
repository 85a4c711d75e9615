/**
 * Two simulated nodes (OS processes) on the service network, the switch in
 * a process of its own: one guest runs the Linux-habit driver behind an
 * 8259 with a timer tick, the other the FreeBSD-habit driver on a node
 * without an 8259. They ping each other and one streams iperf2-format UDP
 * to the other's sink.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startSwitchProcess, type SwitchHandle } from '../src/sim/network/process.js';
import { type NetNodes, readNet, startNetNodes, until } from './networkHelpers.js';

let sw: SwitchHandle | null = null;
let nodes: NetNodes | null = null;
afterEach(async () => {
  await nodes?.stop();
  nodes = null;
  sw?.kill();
  await sw?.exited;
  sw = null;
});

describe('service network end to end', () => {
  it('two guests ping each other and stream UDP through the switch', async () => {
    sw = await startSwitchProcess({ ports: ['node17', 'node42'] });
    nodes = await startNetNodes([
      {
        name: 'node17',
        port: sw.ports.node17!,
        devices: ['pic', 'pit'],
        boot: {
          modules: [
            { name: 'timer', config: { hz: 250 } },
            { name: 'heartbeat', config: { periodNs: 1_000_000 } },
            { name: 'nic', config: { personality: 'linux', mac: '52:54:00:00:00:17' } },
            { name: 'netApp', config: { ip: '10.88.0.17', ping: { dst: '10.88.0.42', intervalMs: 10, count: 30 }, iperf: { dst: '10.88.0.42', rateBps: 4e6, length: 1000, durationMs: 800, startDelayMs: 100 } } },
          ],
        },
      },
      {
        name: 'node42',
        port: sw.ports.node42!,
        boot: {
          modules: [
            { name: 'nic', config: { personality: 'bsd', mac: '52:54:00:00:00:42' } },
            { name: 'netApp', config: { ip: '10.88.0.42', sink: { port: 5001 }, ping: { dst: '10.88.0.17', intervalMs: 20, count: 10 } } },
          ],
        },
      },
    ]);
    const a = await nodes.client('node17');
    const b = await nodes.client('node42');
    const done = await until('stream finished', async () => {
      const [va, vb] = await Promise.all([readNet(a), readNet(b)]);
      return va?.iperf.state === 'done' && va.ping.sent === 30 && vb?.ping.sent === 10 && vb.ping.received === 10 ? { va, vb } : null;
    });
    const { va, vb } = done;
    // Ping both ways: every request answered, in order, once.
    expect(va.ping).toMatchObject({ sent: 30, duplicates: 0, outOfOrder: 0 });
    expect(va.ping.received).toBeGreaterThanOrEqual(29); // the last may still be in flight
    expect(vb.ping).toMatchObject({ sent: 10, received: 10, duplicates: 0, outOfOrder: 0 });
    expect(va.counters.icmpEchoRepliesTx).toBe(10);
    // The stream: ~500 datagrams/s for 0.8 s, nothing lost, duplicated or reordered on the way.
    expect(va.iperf.sent).toBeGreaterThan(250);
    expect(vb.sink).toMatchObject({ received: va.iperf.sent, unique: va.iperf.sent, first: 1, highest: va.iperf.sent, missing: 0, duplicates: 0, outOfOrder: 0, gaps: 0, fins: va.iperf.finTries });
    // The sink answered the FIN as an iperf server does; the sender kept the report.
    expect(va.iperf.report).toMatchObject({ lost: 0, outOfOrder: 0, datagrams: va.iperf.sent + 1, bytes: va.iperf.sent * 1000 });
    expect(va.counters.txRingFull).toBe(0);
    expect(va.counters.rxMalformed + vb.counters.rxMalformed).toBe(0);
  });
});
