import { randomBytes } from 'node:crypto';
import { AgentClient } from '../src/protocol/client.js';
import { SimAgent } from '../src/sim/agent/server.js';
import { deviceFactories } from '../src/sim/devices.js';
import type { GuestSpec } from '../src/sim/guest/os.js';
import { Machine } from '../src/sim/machine.js';

/** A node in this process (machine + agent): for protocol tests that inspect the machine directly. */
export async function inProcessNode(name: string, opts: { ram?: number; boot?: { ramBytes: number; spec: GuestSpec }; devices?: string[]; key?: Buffer } = {}) {
  const key = opts.key ?? randomBytes(32);
  const machine = new Machine(name, opts.ram ?? 16 * 1024 * 1024, deviceFactories(opts.devices ?? []));
  const agent = new SimAgent(machine, { host: '127.0.0.1', port: 0, key });
  await agent.start();
  if (opts.boot) machine.boot(opts.boot.ramBytes, opts.boot.spec);
  const url = `ws://127.0.0.1:${agent.port}`;
  return {
    key,
    machine,
    agent,
    url,
    connect: (k: Uint8Array = key) => AgentClient.connect(url, { node: name, key: k }),
    stop: () => agent.stop().then(() => machine.release()),
  };
}
