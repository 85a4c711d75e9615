/** Simulated nodes on a service network, for the network tests. */
import { randomBytes } from 'node:crypto';
import { AgentClient } from '../src/protocol/client.js';
import { type SimNodeHandle, startNode } from '../src/sim/cluster.js';
import { BOOT_BLOCK_ADDR } from '../src/sim/guest/layout.js';
import { type NetView, parseNetRegion } from '../src/sim/guest/net/index.js';
import { BOOT_BLOCK_BYTES, GuestOs, type GuestSpec } from '../src/sim/guest/os.js';
import type { UdpEndpoint } from '../src/sim/network/udp.js';

export const MiB = 1024 * 1024;

export interface NetNodeSpec {
  name: string;
  port: UdpEndpoint;
  devices?: string[];
  boot?: GuestSpec;
  mac?: string;
}

export interface NetNodes {
  key: Buffer;
  nodes: Map<string, SimNodeHandle>;
  client(name: string): Promise<AgentClient>;
  stop(): Promise<void>;
}

export async function startNetNodes(specs: NetNodeSpec[]): Promise<NetNodes> {
  const key = randomBytes(32);
  const nodes = new Map<string, SimNodeHandle>();
  const clients: AgentClient[] = [];
  const stop = async () => {
    for (const c of clients) c.close();
    for (const h of nodes.values()) h.kill('SIGKILL');
    await Promise.all([...nodes.values()].map((h) => h.exited));
  };
  try {
    const started = await Promise.all(
      specs.map((s) =>
        startNode({
          name: s.name,
          host: '127.0.0.1',
          port: 0,
          ramCapacity: 64 * MiB,
          keyHex: key.toString('hex'),
          devices: s.devices ?? [],
          network: { switch: s.port, autonegMs: 20, ...(s.mac ? { mac: s.mac } : {}) },
          ...(s.boot ? { boot: { ramBytes: 32 * MiB, spec: s.boot } } : {}),
        }),
      ),
    );
    for (const h of started) nodes.set(h.name, h);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    key,
    nodes,
    async client(name) {
      const c = await AgentClient.connect(nodes.get(name)!.url, { node: name, key });
      clients.push(c);
      return c;
    },
    stop,
  };
}

/** The guest's network state, read out of its RAM through the agent (as any hypervisor can). */
export async function readNet(c: AgentClient): Promise<NetView | null> {
  const boot = await c.request('memRead', { addr: BOOT_BLOCK_ADDR, len: BOOT_BLOCK_BYTES });
  const m = GuestOs.findModule(boot.data, 'netApp');
  if (!m) return null;
  return parseNetRegion((await c.request('memRead', { addr: m.base, len: 4096 })).data);
}

export async function until<T>(what: string, f: () => Promise<T | null | undefined | false>, ms = 10_000): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
