/**
 * Frame I/O cost of the service network (`npx tsx src/bench/networkBench.ts`):
 * the switch's forwarding alone, a frame's trip NIC port → switch → NIC
 * port over loopback UDP, and (as root, with the 'pcap' package) the host
 * bridge injecting onto one end of a veth pair and capturing from it.
 */
import { spawnSync } from 'node:child_process';
import { bridgeSupport, HostBridge } from '../sim/network/bridge.js';
import { ServiceNetwork } from '../sim/network/server.js';
import { L2Switch } from '../sim/network/switch.js';
import { UdpNicPort } from '../sim/network/udp.js';

function frame(len: number, dst: number, src: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set([2, 0, 0, 0, 0, dst], 0);
  f.set([2, 0, 0, 0, 0, src], 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  return f;
}

function switchOnly(n: number): number {
  const sw = new L2Switch();
  let got = 0;
  const a = sw.addPort({ name: 'a', deliver: () => got++ });
  const b = sw.addPort({ name: 'b', deliver: () => got++ });
  sw.receive(b, frame(60, 1, 2));
  const f = frame(60, 2, 1);
  const t = performance.now();
  for (let i = 0; i < n; i++) sw.receive(a, f);
  return n / ((performance.now() - t) / 1000);
}

/** Frames/s delivered A → B through the switch with up to `window` frames in flight. */
async function udpPath(len: number, n: number, window = 256): Promise<{ fps: number; lost: number }> {
  const net = await ServiceNetwork.start({ ports: ['a', 'b'] });
  const a = await UdpNicPort.connect(net.endpoint('a'));
  const b = await UdpNicPort.connect(net.endpoint('b'));
  b.send(frame(60, 1, 2)); // teach the switch where B is
  await new Promise((r) => setTimeout(r, 50));
  let got = 0;
  let sent = 0;
  const f = frame(len, 2, 1);
  const t = performance.now();
  await new Promise<void>((resolve) => {
    const pump = () => {
      while (sent < n && sent - got < window) {
        a.send(f);
        sent++;
      }
      if (sent < n) setImmediate(pump);
    };
    b.onFrame(() => {
      got++;
      if (got === n) resolve();
    });
    pump();
    // Lossy by design: stop waiting when nothing more arrives.
    const idle = setInterval(() => {
      if (sent === n && performance.now() - t > 200) {
        clearInterval(idle);
        resolve();
      }
    }, 200);
    idle.unref();
  });
  const fps = got / ((performance.now() - t) / 1000);
  a.close();
  b.close();
  net.close();
  return { fps, lost: n - got };
}

/** Host bridge: frames injected on one veth end, captured on the other by a second bridge. */
async function bridgePath(n: number): Promise<{ fps: number; lost: number } | string> {
  const ok = bridgeSupport();
  if (!ok.ok) return ok.reason;
  const x = `bmbx${process.pid}`.slice(0, 15);
  const y = `bmby${process.pid}`.slice(0, 15);
  const run = (a: string[]) => spawnSync(a[0]!, a.slice(1));
  run(['ip', 'link', 'add', x, 'type', 'veth', 'peer', 'name', y]);
  try {
    for (const i of [x, y]) {
      run(['sysctl', '-qw', `net.ipv6.conf.${i}.disable_ipv6=1`]);
      run(['ip', 'link', 'set', i, 'up']);
    }
    const tx = new L2Switch();
    const rx = new L2Switch();
    const bx = HostBridge.open(tx, x);
    let got = 0;
    rx.addPort({ name: 'sink', deliver: () => got++ });
    const by = HostBridge.open(rx, y);
    await new Promise((r) => setTimeout(r, 100));
    const src = tx.addPort({ name: 'src', deliver: () => {} });
    const f = frame(1514, 2, 1);
    const t = performance.now();
    let sent = 0;
    await new Promise<void>((resolve) => {
      const pump = () => {
        for (let k = 0; k < 64 && sent < n; k++, sent++) tx.receive(src, f);
        if (sent < n) setImmediate(pump);
        else setTimeout(resolve, 300);
      };
      pump();
    });
    const fps = got / ((performance.now() - t - 300) / 1000);
    bx.close(tx);
    by.close(rx);
    return { fps, lost: n - got };
  } finally {
    run(['ip', 'link', 'del', x]);
  }
}

async function main(): Promise<void> {
  console.log(`switch forwarding only: ${(switchOnly(2_000_000) / 1e6).toFixed(2)} M frames/s`);
  for (const len of [60, 1514, 9018]) {
    const r = await udpPath(len, 100_000);
    console.log(`UDP port -> switch -> UDP port, ${len} B: ${(r.fps / 1000).toFixed(0)} k frames/s (${((r.fps * len * 8) / 1e9).toFixed(2)} Gbit/s), ${r.lost} lost`);
  }
  const b = await bridgePath(50_000);
  console.log(typeof b === 'string' ? `bridge: skipped (${b})` : `bridge inject -> veth -> capture, 1514 B: ${(b.fps / 1000).toFixed(0)} k frames/s, ${b.lost} lost`);
}

void main().then(() => process.exit(0));
