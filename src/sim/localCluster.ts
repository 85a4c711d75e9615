import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { type ClusterRecord, ensureDir, isAlive, isNodeProcess, readRecord, recordPath, removeClusterFiles, writeFileAtomic } from '../cli/clusterDir.js';
import { BaremigError } from '../errors.js';
import { openSync, closeSync } from 'node:fs';
import { startNode, type SimNodeHandle } from './cluster.js';
import { startSwitchProcess } from './network/process.js';
import type { GuestSpec } from './guest/os.js';
import { MODULE_AREA_ADDR } from './guest/layout.js';

export interface ClusterUpOptions {
  dir: string;
  nodes: string[];
  /** Guest RAM (and each node's RAM capacity), bytes. */
  ram: number;
  /** Nodes that boot a guest. */
  guests: string[];
  devices: string[];
  dirtyRate: number;
  /** Fraction of guest RAM the workload fills with pseudo-random data at boot. */
  fillFraction: number;
  seed: number;
  /** Keep running after this process exits. */
  detached: boolean;
  host?: string;
  /**
   * With an RTL8169 on the service network: also start a node 'peer' whose
   * guest pings the first guest every 10 ms and receives its UDP stream.
   */
  peer?: boolean;
}

/** Guest addresses on the simulated service network (10.77.0.0/24, inside the simulation only). */
export const PEER_IP = '10.77.0.2';
export function guestIp(index: number): string {
  return `10.77.0.${10 + index}`;
}
function guestMac(index: number): string {
  return `52:54:00:77:00:${(0x10 + index).toString(16).padStart(2, '0')}`;
}

/** The first guest's network: answers ping, streams iperf2-format UDP to the peer when there is one. */
function netModules(index: number, peer: boolean): GuestSpec['modules'] {
  return [
    { name: 'nic', config: { personality: index % 2 === 0 ? 'linux' : 'bsd', mac: guestMac(index) } },
    { name: 'netApp', config: { ip: guestIp(index), ...(peer && index === 0 ? { iperf: { dst: PEER_IP, rateBps: 4e6, length: 1000, durationMs: 3_600_000, startDelayMs: 300 } } : {}) } },
  ];
}

function peerSpec(devices: string[]): GuestSpec {
  return {
    modules: [
      // The 8259 is programmed by the timer module; the NIC's interrupt goes through it.
      ...(devices.includes('pit') && devices.includes('pic') ? [{ name: 'timer' as const, config: { hz: 250 } }] : []),
      { name: 'nic', config: { personality: 'bsd', mac: '52:54:00:77:00:02' } },
      { name: 'netApp', config: { ip: PEER_IP, sink: { port: 5001 }, ping: { dst: guestIp(0), intervalMs: 10, count: 360_000 } } },
    ],
  };
}

export function demoGuestSpec(ram: number, dirtyRate: number, fillFraction: number, seed: number, devices: string[] = []): GuestSpec {
  const room = ram - MODULE_AREA_ADDR - 2 * 1024 * 1024;
  const ws = Math.max(1024 * 1024, Math.floor((room * Math.min(Math.max(fillFraction, 0), 1)) / 4096) * 4096);
  return {
    modules: [
      { name: 'heartbeat', config: { periodNs: 1_000_000 } },
      // A 1000 Hz timer tick through the 8254 and 8259 when the node has them.
      ...(devices.includes('pit') && devices.includes('pic') ? [{ name: 'timer' as const, config: { hz: 1000 } }] : []),
      { name: 'memoryLoad', config: { workingSetBytes: ws, dirtyRateBytesPerSec: dirtyRate, seed, fill: 'random' } },
    ],
  };
}

/**
 * Starts a simulated cluster on this machine: one process per node, a fresh
 * cluster key, and a nodes file any baremig command can use.
 */
export async function clusterUp(o: ClusterUpOptions): Promise<{ record: ClusterRecord; handles: SimNodeHandle[] }> {
  const existing = readRecord(o.dir);
  if (existing) {
    const alive = existing.nodes.filter((n) => isAlive(n.pid) && isNodeProcess(n.pid));
    if (alive.length) throw new BaremigError('STATE', `a simulated cluster is already running from ${o.dir} (${alive.map((n) => n.name).join(', ')}): run 'baremig cluster down' first`);
    removeClusterFiles(o.dir);
  }
  for (const g of o.guests) if (!o.nodes.includes(g)) throw new BaremigError('USAGE', `guest node ${g} is not among the cluster's nodes (${o.nodes.join(', ')})`);
  if (new Set(o.nodes).size !== o.nodes.length) throw new BaremigError('USAGE', 'node names must be unique');
  ensureDir(join(o.dir, 'logs'));
  const key = randomBytes(32);
  const host = o.host ?? '127.0.0.1';
  const handles: SimNodeHandle[] = [];
  const networked = o.devices.includes('rtl8169');
  const withPeer = networked && (o.peer ?? false);
  const allNodes = withPeer ? [...o.nodes, 'peer'] : o.nodes;
  let sw: Awaited<ReturnType<typeof startSwitchProcess>> | null = null;
  try {
    if (networked) {
      const fd = openSync(join(o.dir, 'logs', 'switch.log'), 'a');
      try {
        sw = await startSwitchProcess({ ports: allNodes, host }, { detached: o.detached, logFd: fd });
      } finally {
        closeSync(fd);
      }
    }
    const started = await Promise.all(
      allNodes.map((name) => {
        const index = o.guests.indexOf(name);
        const spec = name === 'peer' && withPeer ? peerSpec(o.devices) : index >= 0 ? demoGuestSpec(o.ram, o.dirtyRate, o.fillFraction, o.seed, o.devices) : null;
        if (spec && networked && name !== 'peer') spec.modules.push(...netModules(index, withPeer));
        const ram = name === 'peer' ? Math.min(o.ram, 64 * 1024 * 1024) : o.ram;
        return startNode(
          {
            name,
            host,
            port: 0,
            ramCapacity: ram,
            keyHex: key.toString('hex'),
            devices: o.devices.filter((d) => d !== 'rtl8169'),
            ...(sw ? { network: { switch: sw.ports[name]!, autonegMs: 100 } } : {}),
            ...(spec ? { boot: { ramBytes: ram, spec } } : {}),
          },
          { detached: o.detached, logFile: join(o.dir, 'logs', `${name}.log`), startTimeoutMs: 60_000 },
        );
      }),
    );
    handles.push(...started);
  } catch (e) {
    for (const h of handles) h.kill();
    sw?.kill('SIGKILL');
    throw e;
  }
  const nodesFile = join(o.dir, 'nodes.yaml');
  const doc = {
    cluster: { key: key.toString('hex') },
    nodes: Object.fromEntries(handles.map((h) => [h.name, { agent: h.url, ram: `${Math.round((h.name === 'peer' ? Math.min(o.ram, 64 * 1024 * 1024) : o.ram) / 1024 / 1024)}M`, devices: o.devices }])),
  };
  writeFileAtomic(nodesFile, `# baremig nodes file for the simulated cluster started ${new Date().toISOString()}\n${stringify(doc)}`);
  const record: ClusterRecord = {
    createdAt: new Date().toISOString(),
    nodesFile,
    nodes: handles.map((h) => ({ name: h.name, pid: h.pid, url: h.url, log: join(o.dir, 'logs', `${h.name}.log`) })),
    ...(sw ? { switch: { pid: sw.pid, log: join(o.dir, 'logs', 'switch.log') } } : {}),
  };
  writeFileAtomic(recordPath(o.dir), JSON.stringify(record, null, 2));
  return { record, handles };
}

/** Stops the simulated cluster recorded in `dir`. Returns the nodes stopped. */
export async function clusterDown(dir: string): Promise<string[]> {
  const rec = readRecord(dir);
  if (!rec) return [];
  const stopped: string[] = [];
  for (const n of rec.nodes) {
    if (isAlive(n.pid) && isNodeProcess(n.pid)) {
      try {
        process.kill(n.pid, 'SIGTERM');
        stopped.push(n.name);
      } catch {
        /* already gone */
      }
    }
  }
  const deadline = Date.now() + 5000;
  while (rec.nodes.some((n) => isAlive(n.pid) && isNodeProcess(n.pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const n of rec.nodes) if (isAlive(n.pid) && isNodeProcess(n.pid)) process.kill(n.pid, 'SIGKILL');
  if (rec.switch && isAlive(rec.switch.pid) && isNodeProcess(rec.switch.pid)) process.kill(rec.switch.pid, 'SIGTERM');
  removeClusterFiles(dir);
  return stopped;
}
