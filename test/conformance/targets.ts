import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import xxhashWasm from 'xxhash-wasm';
import { authMac, newNonce } from '../../src/protocol/auth.js';
import { AgentClient, type AgentTransport } from '../../src/protocol/client.js';
import { decode, encode } from '../../src/protocol/codec.js';
import { PROTOCOL_VERSION } from '../../src/protocol/messages.js';
import type { GuestMemory } from '../../src/sim/guestMemory.js';
import { type TestCluster, startTestCluster } from '../helpers.js';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const HYPERVISOR = join(REPO, 'hypervisor');
export const AGENT_BIN = join(HYPERVISOR, 'build/baremig-agent-hosted');
export const MiB = 1 << 20;

/** One agent implementation under test: two nodes (node1, node2) and how to reach them. */
export interface Target {
  name: string;
  key: Buffer;
  url(node: string): string;
  /** How node1's agent reaches node2's page stream (TCP host, or the link MAC). */
  dataHost(node: string): string;
  connect(node: string, key?: Buffer, timeoutMs?: number): Promise<AgentClient>;
  /** The memory digest this agent must report for the RAM held in `mem`. */
  referenceDigest(mem: GuestMemory): Promise<string>;
  stop(): Promise<void>;
}

/**
 * The memory digest computed from scratch with an independent XXH64
 * (xxhash-wasm), no caches: XXH64 of each 4 KiB page → XXH64 of each 1 MiB
 * group's 256 page hashes (8 bytes each, little-endian) → SHA-256 of the
 * group hashes (8 bytes each, in order), hex. Both agents must report this.
 */
export async function xxh64Tree(bytes: Uint8Array): Promise<string> {
  const { h64Raw } = await xxhashWasm();
  const groups = bytes.length >> 20;
  const gh = Buffer.alloc(groups * 8);
  const ph = Buffer.alloc(256 * 8);
  for (let g = 0; g < groups; g++) {
    for (let p = 0; p < 256; p++) {
      const off = (g * 256 + p) * 4096;
      ph.writeBigUInt64LE(h64Raw(bytes.subarray(off, off + 4096), 0n), p * 8);
    }
    gh.writeBigUInt64LE(h64Raw(ph, 0n), g * 8);
  }
  return createHash('sha256').update(gh).digest('hex');
}

/** A transport with the replies queued: for hostile input that AgentClient would not send. */
export class RawSession {
  private queue: Array<Record<string, unknown>> = [];
  private waiters: Array<(m: Record<string, unknown> | null) => void> = [];
  closed = false;
  /** The bytes of the last message received (for byte-exact comparisons across agents). */
  lastRaw: Uint8Array = new Uint8Array(0);
  constructor(readonly t: AgentTransport) {
    t.onMessage((d) => {
      this.lastRaw = d;
      const m = decode(d);
      const w = this.waiters.shift();
      if (w) w(m);
      else this.queue.push(m);
    });
    t.onClose(() => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w(null);
    });
  }
  static async open(target: Target, node: string): Promise<RawSession> {
    return new RawSession(await AgentClient.openTransport(target.url(node), { node, key: target.key }));
  }
  next(timeoutMs = 3000): Promise<Record<string, unknown> | null> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== fn);
        resolve(null);
      }, timeoutMs);
      const fn = (m: Record<string, unknown> | null) => {
        clearTimeout(timer);
        resolve(m);
      };
      this.waiters.push(fn);
    });
  }
  send(msg: Record<string, unknown>): void {
    this.t.send(encode(msg));
  }
  sendRaw(b: Uint8Array): void {
    this.t.send(b);
  }
  async ask(msg: Record<string, unknown>): Promise<Record<string, unknown> | null> {
    this.send(msg);
    return this.next();
  }
  async login(node: string, key: Buffer): Promise<void> {
    const h = await this.ask({ t: 'hello', id: 1, v: PROTOCOL_VERSION });
    const nonce = newNonce();
    const r = await this.ask({ t: 'auth', id: 2, nonce, mac: authMac(key, 'client', h!.challenge as Uint8Array, nonce, node) });
    if (r?.t !== 'ok') throw new Error(`login failed: ${JSON.stringify(r)}`);
  }
  close(): void {
    this.t.close();
  }
}

export async function tsTarget(): Promise<Target> {
  const cluster: TestCluster = await startTestCluster([{ name: 'node1', ram: 64 * MiB }, { name: 'node2', ram: 64 * MiB }]);
  return {
    name: 'typescript agent over WebSocket',
    key: cluster.key,
    url: (n) => cluster.nodes.get(n)!.url,
    dataHost: () => '127.0.0.1',
    connect: (n, key = cluster.key, timeoutMs = 5000) => AgentClient.connect(cluster.nodes.get(n)!.url, { node: n, key, connectTimeoutMs: timeoutMs }),
    // whatever GuestMemory computes is the simulator agent's definition
    referenceDigest: async (mem) => (await mem.digest()).hex,
    stop: () => cluster.stop(),
  };
}

/** Why the native target cannot run here, or null. */
export function nativeUnavailable(): string | null {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces and AF_PACKET need root (CI runs as root)';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  } catch {
    return "the 'ip' tool (iproute2) is missing";
  }
  return null;
}

export function buildNative(): void {
  execFileSync('make', ['-s', '-C', HYPERVISOR, 'all'], { stdio: 'inherit' });
}

export interface NativeNet {
  prefix: string;
  key: Buffer;
  keyFile: string;
  agents: Map<string, ChildProcess>;
  logs: Map<string, string>;
  mac(node: string): string;
  url(node: string, loss?: number): string;
  startAgent(node: string, opts?: { loss?: number; ram?: string; trapChips?: string }): Promise<void>;
  stats(node: string): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

let seq = 0;
/** The migration network in namespaces, with hosted agents on node1..nodeN. */
export async function nativeNet(nodes = 2, opts: { rate?: string; loss?: number } = {}): Promise<NativeNet> {
  const prefix = `bm${process.pid % 10000}${seq++}`.slice(0, 8);
  const up = join(HYPERVISOR, 'netns/up.sh');
  const down = join(HYPERVISOR, 'netns/down.sh');
  execFileSync(down, [prefix], { stdio: 'ignore' });
  execFileSync(up, [prefix, '--nodes', String(nodes), ...(opts.rate ? ['--rate', opts.rate] : []), ...(opts.loss ? ['--loss', String(opts.loss)] : [])], { stdio: 'ignore' });
  const dir = mkdtempSync(join(tmpdir(), 'baremig-native-'));
  const key = randomBytes(32);
  const keyFile = join(dir, 'cluster.key');
  writeFileSync(keyFile, key.toString('hex'), { mode: 0o600 });
  const agents = new Map<string, ChildProcess>();
  const logs = new Map<string, string>();
  const idx = (node: string) => Number(/^node(\d+)$/.exec(node)![1]);
  const net: NativeNet = {
    prefix,
    key,
    keyFile,
    agents,
    logs,
    mac: (node) => `02:62:6d:00:00:${idx(node).toString(16).padStart(2, '0')}`,
    url: (node, loss) => `l2://mig0/${net.mac(node)}?netns=${prefix}-coord${loss ? `&loss=${loss}` : ''}`,
    async startAgent(node, o = {}) {
      const args = ['netns', 'exec', `${prefix}-n${idx(node)}`, AGENT_BIN, '--if', 'mig0', '--name', node, '--key-file', keyFile, '--ram-capacity', o.ram ?? '64M'];
      if (o.loss) args.push('--loss', String(o.loss));
      if (o.trapChips) args.push('--trap-chips', o.trapChips);
      const child = spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      logs.set(node, '');
      child.stderr!.on('data', (d: Buffer) => logs.set(node, (logs.get(node)! + d.toString()).slice(-20000)));
      agents.set(node, child);
      // the agent prints one line when its socket is bound
      const t0 = Date.now();
      while (!logs.get(node)!.includes('baremig-agent-hosted: node') && Date.now() - t0 < 5000) {
        if (child.exitCode !== null) throw new Error(`agent ${node} exited: ${logs.get(node)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stats(node) {
      const child = agents.get(node)!;
      const before = logs.get(node)!.length;
      child.kill('SIGUSR1');
      const t0 = Date.now();
      while (Date.now() - t0 < 2000) {
        const tail = logs.get(node)!.slice(before);
        const line = tail.split('\n').find((l) => l.startsWith('{'));
        if (line && tail.includes('}\n')) return JSON.parse(line) as Record<string, number>;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`no counters from agent ${node}`);
    },
    async stop() {
      for (const c of agents.values()) if (c.exitCode === null) c.kill('SIGTERM');
      await Promise.all([...agents.values()].map((c) => (c.exitCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
      execFileSync(down, [prefix], { stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return net;
}

export async function nativeTarget(): Promise<Target> {
  buildNative();
  const net = await nativeNet(2);
  try {
    await net.startAgent('node1');
    await net.startAgent('node2');
  } catch (e) {
    await net.stop();
    throw e;
  }
  const clients: AgentClient[] = [];
  return {
    name: 'native hosted agent over raw frames',
    key: net.key,
    url: (n) => net.url(n),
    dataHost: (n) => net.mac(n),
    // the same definition as the simulator's agent (digest parity, issue 5)
    referenceDigest: async (mem) => (await mem.digest()).hex,
    async connect(n, key = net.key, timeoutMs = 5000) {
      const c = await AgentClient.connect(net.url(n), { node: n, key, connectTimeoutMs: timeoutMs });
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) c.close();
      await net.stop();
    },
  };
}
