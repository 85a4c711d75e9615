import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import xxhashWasm from 'xxhash-wasm';
import { authMac, newNonce } from '../../src/protocol/auth.js';
import { AgentClient, type AgentTransport } from '../../src/protocol/client.js';
import { decode, encode } from '../../src/protocol/codec.js';
import { PROTOCOL_VERSION } from '../../src/protocol/messages.js';
import type { GuestMemory } from '../../src/sim/guestMemory.js';
import { READY_PREFIX, type SimNodeConfig } from '../../src/sim/node/config.js';
import { type TestCluster, startTestCluster } from '../helpers.js';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const HYPERVISOR = join(REPO, 'hypervisor');
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

/** The native agent addon and its sources (binding.gyp target baremig_hosted). */
export const ADDON = join(REPO, 'build/Release/baremig_hosted.node');
const NODE_MAIN = join(REPO, 'src/sim/node/main.ts');

/**
 * Builds what the native tests run: the coordinator's link helper (make) and
 * the native agent addon the simulated nodes load (node-gyp, as `npm install`
 * does; rebuilt here only when a C source is newer than the addon).
 */
export function buildNative(): void {
  execFileSync('make', ['-s', '-C', HYPERVISOR, 'all'], { stdio: 'inherit' });
  const sources = [...readdirSync(join(HYPERVISOR, 'core')).map((f) => join(HYPERVISOR, 'core', f)), ...['napi_hal.c', 'net.c', 'net.h'].map((f) => join(HYPERVISOR, 'hosted', f)), join(HYPERVISOR, 'hal.h'), join(REPO, 'binding.gyp')];
  const fresh = () => {
    const built = existsSync(ADDON) ? statSync(ADDON).mtimeMs : 0;
    return sources.every((f) => statSync(f).mtimeMs <= built);
  };
  if (fresh()) return;
  // Test files run in parallel workers: one builds, the others wait for it (a lock directory).
  const lock = join(REPO, 'build', '.baremig-hosted.lock');
  mkdirSync(join(REPO, 'build'), { recursive: true });
  const t0 = Date.now();
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (Date.now() - t0 > 120_000) rmSync(lock, { recursive: true, force: true }); // a builder that died
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
  try {
    if (fresh()) return;
    const gyp = join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
    const nodedir = process.env.npm_config_nodedir ?? (existsSync('/usr/include/node/node_api.h') ? '/usr' : undefined);
    try {
      execFileSync(process.execPath, [gyp, existsSync(join(REPO, 'build/Makefile')) ? 'build' : 'rebuild', ...(nodedir ? [`--nodedir=${nodedir}`] : [])], { cwd: REPO, stdio: 'pipe' });
    } catch (e) {
      throw new Error(`building the native agent addon failed: ${String((e as { stderr?: Buffer }).stderr ?? e).slice(-4000)}`);
    }
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Node processes started by nativeNet: killed if this process exits without stopping them. */
const started = new Set<ChildProcess>();
let exitHook = false;
function killOnExit(child: ChildProcess): void {
  started.add(child);
  child.once('exit', () => started.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const c of started) c.kill('SIGKILL');
  });
}

export interface NativeNodeOptions {
  /** Fraction of received link frames the agent drops (fault injection). */
  loss?: number;
  /** RAM capacity, as '64M' (default) or bytes. */
  ram?: string | number;
  /** Device kinds of the simulated node ('pic', 'pit', 'rtl8169'). */
  devices?: string[];
  /** The node's RTL8169 on a service-network switch port (SimNodeConfig.network). */
  network?: SimNodeConfig['network'];
}

export interface NativeNet {
  prefix: string;
  key: Buffer;
  keyFile: string;
  agents: Map<string, ChildProcess>;
  logs: Map<string, string>;
  mac(node: string): string;
  url(node: string, loss?: number): string;
  /**
   * Starts node N as a simulated node process whose agent is the native one
   * (the C core as an addon, src/sim/node/nativeAgent.ts), its migration
   * link mig0 in namespace <prefix>-nN.
   */
  startAgent(node: string, opts?: NativeNodeOptions): Promise<void>;
  /** The native agent's counters (SIGUSR2: one JSON line on stderr). */
  stats(node: string): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

function parseRam(r: string | number | undefined): number {
  if (typeof r === 'number') return r;
  const m = /^(\d+)([KMG]?)$/i.exec(r ?? '64M');
  if (!m) throw new Error(`bad RAM size ${r}`);
  return Number(m[1]) * ({ '': 1, K: 1024, M: MiB, G: 1024 * MiB } as Record<string, number>)[m[2]!.toUpperCase()]!;
}

let seq = 0;
/** The migration network in namespaces, with simulated nodes running the native agent on node1..nodeN. */
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
      const cfg: SimNodeConfig = {
        name: node,
        host: '127.0.0.1',
        port: 0,
        ramCapacity: parseRam(o.ram),
        keyHex: key.toString('hex'),
        devices: o.devices ?? [],
        agent: 'native',
        link: { ifname: 'mig0', netns: `${prefix}-n${idx(node)}`, ...(o.loss ? { loss: o.loss } : {}) },
        ...(o.network ? { network: o.network } : {}),
      };
      const child = spawn(process.execPath, ['--import', 'tsx', '--max-old-space-size=512', NODE_MAIN, node], {
        cwd: REPO,
        env: { ...process.env, BAREMIG_NODE_CONFIG: JSON.stringify(cfg) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      killOnExit(child);
      logs.set(node, '');
      child.stderr!.on('data', (d: Buffer) => logs.set(node, (logs.get(node)! + d.toString()).slice(-20000)));
      agents.set(node, child);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      // the node prints its READY line once the agent's link socket is bound
      const t0 = Date.now();
      while (!out.includes(`${READY_PREFIX}`) || !out.slice(out.indexOf(READY_PREFIX)).includes('\n')) {
        if (child.exitCode !== null) throw new Error(`node ${node} exited: ${logs.get(node)}`);
        if (Date.now() - t0 > 20_000) throw new Error(`node ${node} not ready after 20 s: ${logs.get(node)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stats(node) {
      const child = agents.get(node)!;
      const before = logs.get(node)!.length;
      child.kill('SIGUSR2');
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
    name: 'native agent (C core as an addon in a simulated node) over raw frames',
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
