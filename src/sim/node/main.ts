/**
 * One simulated bare-metal node as an OS process (so a test can kill it):
 * a Machine and its agent: the TypeScript agent over WebSocket, or with
 * `agent: 'native'` the hypervisor's C agent core as a Node-API addon on a
 * raw migration link (src/sim/node/nativeAgent.ts; needs root). Started by
 * `baremig cluster up` and by tests with its SimNodeConfig as JSON in
 * BAREMIG_NODE_CONFIG (the node name as argv[2], for ps); prints one READY
 * line with its ports (native: its link MAC).
 */
import { BaremigError } from '../../errors.js';
import { parseKey } from '../../protocol/auth.js';
import { SimAgent } from '../agent/server.js';
import { deviceFactories, knownDeviceKinds } from '../devices.js';
import { type DeviceFactory, Machine } from '../machine.js';
import { nicFactory } from '../network/nicPort.js';
import { UdpNicPort } from '../network/udp.js';
import { startNativeAgent } from './nativeAgent.js';
import { READY_PREFIX, type SimNodeConfig } from './config.js';

async function main(): Promise<void> {
  const cfg = JSON.parse(process.env.BAREMIG_NODE_CONFIG ?? '{}') as SimNodeConfig;
  delete process.env.BAREMIG_NODE_CONFIG;
  const key = parseKey(cfg.keyHex);
  if (!key) throw new BaremigError('USAGE', 'node key must be hex, at least 16 bytes');
  // The RTL8169 comes with its cable when the node is on the service network.
  const net = cfg.network;
  const port = net ? await UdpNicPort.connect(net.switch) : undefined;
  const ownNic = net !== undefined || (cfg.devices.includes('rtl8169') && !knownDeviceKinds().includes('rtl8169'));
  const factories: DeviceFactory[] = deviceFactories(ownNic ? cfg.devices.filter((k) => k !== 'rtl8169') : cfg.devices);
  // After the others: the interrupt controller exists when the NIC's line is wired.
  if (ownNic) factories.push(nicFactory({ ...net, port }));
  const machine = new Machine(cfg.name, cfg.ramCapacity, factories);
  machine.onCrash = (e) => process.stderr.write(`guest crashed on ${cfg.name}: ${(e as Error).stack ?? String(e)}\n`);
  if (cfg.agent === 'native') {
    // The hypervisor's C agent core in this process (a Node-API addon), on the migration link.
    if (!cfg.link?.ifname) throw new BaremigError('USAGE', "agent 'native' needs link.ifname (the migration link interface)");
    if (cfg.boot) throw new BaremigError('USAGE', "agent 'native' boots guests over the protocol (boot request), not at start-up");
    const agent = startNativeAgent(machine, { name: cfg.name, keyHex: cfg.keyHex, ramCapacity: cfg.ramCapacity, link: cfg.link });
    const stats = () => process.stderr.write(`${JSON.stringify(agent.stats())}\n`);
    process.stderr.write(`native agent: node ${cfg.name} on ${cfg.link.ifname}${cfg.link.netns ? ` (netns ${cfg.link.netns})` : ''} ${agent.mac} mtu ${agent.mtu}, sha256 ${agent.sha256}\n`);
    process.stdout.write(`${READY_PREFIX}${JSON.stringify({ name: cfg.name, agent: 'native', port: 0, dataPort: 0, mac: agent.mac, mtu: agent.mtu, pid: process.pid })}\n`);
    // SIGUSR2 (SIGUSR1 belongs to Node's inspector) and exit print the core's counters as one JSON line.
    process.on('SIGUSR2', stats);
    const stop = () => {
      port?.close();
      agent.stop();
      stats();
      process.exit(0);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.stdout.on('error', () => {});
    return;
  }
  const agent = new SimAgent(machine, { host: cfg.host, port: cfg.port, key });
  await agent.start();
  if (cfg.boot) machine.boot(cfg.boot.ramBytes, cfg.boot.spec);
  process.stdout.write(`${READY_PREFIX}${JSON.stringify({ name: cfg.name, port: agent.port, dataPort: agent.dataPort, pid: process.pid })}\n`);
  const stop = () => {
    port?.close();
    void agent.stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The parent may go away after READY (cluster up detaches): never die of a closed stdout.
  process.stdout.on('error', () => {});
}

main().catch((e: unknown) => {
  process.stderr.write(`node failed to start: ${(e as Error).message}\n`);
  process.exit(1);
});
