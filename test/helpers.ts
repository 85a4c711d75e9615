import { randomBytes } from 'node:crypto';
import { AgentClient } from '../src/protocol/client.js';
import { type SimNodeHandle, startNode } from '../src/sim/cluster.js';
import type { SimNodeConfig } from '../src/sim/node/config.js';
import type { GuestSpec } from '../src/sim/guest/os.js';

export const MiB = 1024 * 1024;

export function testKey(): Buffer {
  return randomBytes(32);
}

export function workloadSpec(opts: { workingSetBytes?: number; dirtyRate?: number; fill?: 'zero' | 'random' | 'halfRandom'; seed?: number } = {}): GuestSpec {
  return {
    modules: [
      { name: 'heartbeat', config: { periodNs: 1_000_000 } },
      { name: 'memoryLoad', config: { workingSetBytes: opts.workingSetBytes ?? 8 * MiB, dirtyRateBytesPerSec: opts.dirtyRate ?? 5e6, seed: opts.seed ?? 7, fill: opts.fill ?? 'random' } },
    ],
  };
}

export interface TestCluster {
  key: Buffer;
  nodes: Map<string, SimNodeHandle>;
  client(name: string): Promise<AgentClient>;
  stop(): Promise<void>;
}

export async function startTestCluster(specs: Array<{ name: string; ram?: number; boot?: GuestSpec; ramBytes?: number; devices?: string[] }>): Promise<TestCluster> {
  const key = testKey();
  const nodes = new Map<string, SimNodeHandle>();
  const clients: AgentClient[] = [];
  try {
    const started = await Promise.all(
      specs.map((s) => {
        const cfg: SimNodeConfig = { name: s.name, host: '127.0.0.1', port: 0, ramCapacity: s.ram ?? 64 * MiB, keyHex: key.toString('hex'), devices: s.devices ?? [] };
        if (s.boot) cfg.boot = { ramBytes: s.ramBytes ?? 32 * MiB, spec: s.boot };
        return startNode(cfg);
      }),
    );
    for (const h of started) nodes.set(h.name, h);
  } catch (e) {
    for (const h of nodes.values()) h.kill();
    throw e;
  }
  return {
    key,
    nodes,
    async client(name) {
      const h = nodes.get(name)!;
      const c = await AgentClient.connect(h.url, { node: name, key });
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) c.close();
      for (const h of nodes.values()) h.kill('SIGKILL');
      await Promise.all([...nodes.values()].map((h) => h.exited));
    },
  };
}
