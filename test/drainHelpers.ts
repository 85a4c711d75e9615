import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { type NodeStatus, nodeStatuses } from '../src/cli/commands/nodes.js';
import type { DrainEvent } from '../src/drain/types.js';
import { type Inventory, loadInventory } from '../src/inventory/nodesFile.js';
import type { GuestSpec } from '../src/sim/guest/os.js';
import { MiB, type TestCluster, startTestCluster, workloadSpec } from './helpers.js';

/** Simulated clusters for the drain's end-to-end tests: one process per node, and nodes files naming some of them. */
export interface NodeSpec {
  name: string;
  /** Boot a guest (32 MiB unless `ramBytes`). */
  guest?: { workingSetBytes?: number; dirtyRate?: number; fill?: 'zero' | 'random' | 'halfRandom' };
  ramBytes?: number;
  /** Node RAM capacity (default 64 MiB). */
  ram?: number;
  /** What the nodes file says about the node (the agent reports its real hardware). */
  file?: { devices?: string[]; pool?: string; ram?: string };
}

export interface DrainCluster {
  cluster: TestCluster;
  specs: NodeSpec[];
  /** A nodes file (in a fresh directory, with its own drain state) listing `names`; `plain`: without the specs' `file` attributes. */
  nodesFile(names: string[], plain?: boolean): string;
  inventory(names: string[], plain?: boolean): Inventory;
  statuses(names?: string[]): Promise<NodeStatus[]>;
  running(names?: string[]): Promise<string[]>;
  stop(): Promise<void>;
}

export async function startDrainCluster(specs: NodeSpec[]): Promise<DrainCluster> {
  const cluster = await startTestCluster(
    specs.map((s) => ({
      name: s.name,
      ...(s.ram ? { ram: s.ram } : {}),
      ...(s.guest ? { boot: workloadSpec({ workingSetBytes: s.guest.workingSetBytes ?? 4 * MiB, dirtyRate: s.guest.dirtyRate ?? 2e6, ...(s.guest.fill ? { fill: s.guest.fill } : {}) }) as GuestSpec, ramBytes: s.ramBytes ?? 32 * MiB } : {}),
    })),
  );
  const files = new Map<string, string>();
  const all = specs.map((s) => s.name);
  const dc: DrainCluster = {
    cluster,
    specs,
    nodesFile(names, plain = false) {
      const key = `${names.join(',')}${plain ? ' plain' : ''}`;
      const have = files.get(key);
      if (have) return have;
      const dir = mkdtempSync(join(tmpdir(), 'baremig-drain-e2e-'));
      const file = join(dir, 'nodes.yaml');
      const doc = {
        cluster: { key: cluster.key.toString('hex') },
        nodes: Object.fromEntries(
          names.map((n) => {
            const s = plain ? { file: undefined } : specs.find((x) => x.name === n)!;
            return [n, { agent: cluster.nodes.get(n)!.url, ...(s.file?.ram ? { ram: s.file.ram } : {}), ...(s.file?.devices ? { devices: s.file.devices } : {}), ...(s.file?.pool ? { pool: s.file.pool } : {}) }];
          }),
        ),
      };
      writeFileSync(file, stringify(doc));
      files.set(key, file);
      return file;
    },
    inventory: (names, plain = false) => loadInventory(dc.nodesFile(names, plain)),
    statuses: (names = all) => nodeStatuses(dc.inventory(names)),
    async running(names = all) {
      return (await dc.statuses(names)).filter((s) => s.reachable && s.guest === 'running').map((s) => s.name);
    },
    stop: () => cluster.stop(),
  };
  return dc;
}

/** Samples how many guests run at once while `during` runs (one running copy: never more than booted). */
export async function sampleRunning(dc: DrainCluster, names: string[], during: Promise<unknown>, everyMs = 150): Promise<number[]> {
  const counts: number[] = [];
  let done = false;
  void during.finally(() => (done = true)).catch(() => {});
  while (!done) {
    counts.push((await dc.running(names)).length);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return counts;
}

const MAIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');

export interface CliRun {
  child: ChildProcess;
  /** Parsed stdout lines (NDJSON with --json). */
  lines: Array<Record<string, unknown>>;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (null when killed). */
  exit: Promise<number | null>;
  /** Resolves with the first line that matches. */
  waitFor(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/** `baremig ARGS` as a child process (node --import tsx src/cli/main.ts). */
export function cli(args: string[]): CliRun {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let out = '';
  let err = '';
  let buf = '';
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!l.startsWith('{')) continue;
      const o = JSON.parse(l) as Record<string, unknown>;
      lines.push(o);
      for (const w of [...waiters]) if (w.pred(o)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(o);
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  return {
    child,
    lines,
    stdout: () => out,
    stderr: () => err,
    exit,
    waitFor(pred, timeoutMs = 30_000) {
      const hit = lines.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no such line within ${timeoutMs} ms; stdout:\n${out}\nstderr:\n${err}`)), timeoutMs);
        waiters.push({ pred, resolve: (l) => (clearTimeout(t), resolve(l)) });
        void exit.then(() => setTimeout(() => reject(new Error(`exited before such a line; stdout:\n${out}\nstderr:\n${err}`)), 50));
      });
    },
  };
}

export const events = (lines: Array<Record<string, unknown>>) => lines.filter((l) => typeof l.event === 'string') as unknown as DrainEvent[];

/** Most migrations open at once, from the events' timestamps (started … finished; `mono`: one process's monotonic clock). */
export function maxConcurrent(evs: DrainEvent[]): number {
  const pts: Array<[number, number]> = [];
  for (const e of evs) {
    if (e.event === 'started') pts.push([e.mono, 1]);
    if (e.event === 'finished') pts.push([e.mono, -1]);
  }
  pts.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0;
  let max = 0;
  for (const [, d] of pts) max = Math.max(max, (cur += d));
  return max;
}
