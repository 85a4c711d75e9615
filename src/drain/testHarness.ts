import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { NodeStatus } from '../cli/commands/nodes.js';
import type { MigrationEvent, MigrationOptions, MigrationSummary } from '../engine/types.js';
import { type Inventory, loadInventory } from '../inventory/nodesFile.js';
import type { GuestRunState } from '../protocol/messages.js';
import type { ClusterOps, DrainEvent, DrainEventBody } from './types.js';

/**
 * Test support for the drain's unit tests (not shipped): a cluster of fake
 * nodes that keeps the one-running-copy rule the way the engine does, and a
 * nodes file in a fresh temporary directory.
 */
export const MiB = 1024 * 1024;

export interface FakeNode {
  name: string;
  reachable: boolean;
  guest: GuestRunState;
  ramBytes: number;
  ramCapacity: number;
  devices: string[];
  pool?: string;
}

export interface Behaviour {
  /** How long the migration takes, ms. */
  ms: number;
  /** Fail it (after `ms`); the guest goes back to its source unless `sourceRunning` is false. */
  fail?: { code: string; message: string; sourceRunning?: boolean };
  /** The destination dies half way (unreachable from then on; the migration fails AGENT_UNREACHABLE). */
  killDestination?: boolean;
}

export interface Run {
  src: string;
  dst: string;
  start: number;
  end: number;
  ok: boolean;
  forced: boolean;
  cancelled: boolean;
}

export class FakeCluster implements ClusterOps {
  readonly nodes = new Map<string, FakeNode>();
  readonly runs: Run[] = [];
  active = 0;
  peak = 0;
  readonly perNode = new Map<string, number>();
  peakPerNode = 0;
  /** Most guests running at any instant (one running copy: never above the number booted). */
  peakRunning = 0;
  behaviour: (src: string, dst: string, n: number) => Behaviour = () => ({ ms: 5 });
  private count = 0;

  constructor(nodes: Array<Partial<FakeNode> & { name: string }>) {
    for (const n of nodes) this.nodes.set(n.name, { reachable: true, guest: 'none', ramBytes: 0, ramCapacity: 64 * MiB, devices: [], ...n, ...(n.guest === 'running' && !n.ramBytes ? { ramBytes: 32 * MiB } : {}) });
    this.peakRunning = this.running().length;
  }

  running(): string[] {
    return [...this.nodes.values()].filter((n) => n.reachable && n.guest === 'running').map((n) => n.name);
  }

  private noteRunning(): void {
    this.peakRunning = Math.max(this.peakRunning, this.running().length);
  }

  async statuses(names?: string[]): Promise<NodeStatus[]> {
    await new Promise((r) => setImmediate(r));
    return [...this.nodes.values()]
      .filter((n) => !names || names.includes(n.name))
      .map((n) => (n.reachable ? { name: n.name, agent: `ws://fake/${n.name}`, reachable: true, guest: n.guest, ramBytes: n.ramBytes, ramCapacity: n.ramCapacity, devices: n.devices } : { name: n.name, agent: `ws://fake/${n.name}`, reachable: false, error: { code: 'AGENT_UNREACHABLE', message: `${n.name} is down` } }));
  }

  private summary(ok: boolean, src: string, dst: string, t0: number, error?: MigrationSummary['error']): MigrationSummary {
    return { ok, source: src, destination: dst, totalMs: performance.now() - t0, downtimeMs: ok ? 1 : 0, guestDowntimeMs: ok ? 1 : null, rounds: 1, bytesSent: 0, pagesSent: 0, zeroPages: 0, throughputMBps: 0, downtimeLimitMs: 300, expectedDowntimeMs: 1, verified: ok, guestContinued: ok ? true : null, devices: [], downtimeBreakdownMs: {}, ...(error ? { error } : {}) };
  }

  async migrate(src: string, dst: string, options: Partial<MigrationOptions>, onEvent: (e: MigrationEvent) => void): Promise<MigrationSummary> {
    const t0 = performance.now();
    const s = this.nodes.get(src)!;
    const d = this.nodes.get(dst)!;
    const n = ++this.count;
    if (!s.reachable || !d.reachable) return this.summary(false, src, dst, t0, { code: 'AGENT_UNREACHABLE', message: `${!s.reachable ? src : dst} is down`, phase: 'setup', sourceRunning: s.reachable && s.guest === 'running' });
    if (s.guest !== 'running') return this.summary(false, src, dst, t0, { code: 'STATE', message: `${src} has no running guest (it is ${s.guest})`, phase: 'setup', sourceRunning: false });
    if (d.guest === 'running' || d.guest === 'paused' || d.guest === 'incoming') return this.summary(false, src, dst, t0, { code: 'STATE', message: `${dst} is not idle`, phase: 'setup', sourceRunning: true });
    const b = this.behaviour(src, dst, n);
    const run: Run = { src, dst, start: performance.now(), end: 0, ok: false, forced: false, cancelled: false };
    this.runs.push(run);
    this.active++;
    this.peak = Math.max(this.peak, this.active);
    for (const x of [src, dst]) {
      this.perNode.set(x, (this.perNode.get(x) ?? 0) + 1);
      this.peakPerNode = Math.max(this.peakPerNode, this.perNode.get(x)!);
    }
    d.guest = 'incoming';
    onEvent({ type: 'phase', phase: 'precopy', elapsedMs: 0, progress: 0 });
    try {
      const half = b.ms / 2;
      await this.wait(half, options);
      if (b.killDestination) {
        d.reachable = false;
        d.guest = 'none';
        await this.wait(1, {});
        return this.summary(false, src, dst, t0, { code: 'AGENT_UNREACHABLE', message: `lost connection to agent ${dst}`, phase: 'precopy', sourceRunning: true });
      }
      await this.wait(half, options);
      if (options.forceSignal?.aborted) {
        run.forced = true;
        onEvent({ type: 'policy', action: 'switch-over', reason: 'forced', downtimeLimitMs: options.maxDowntimeLimitMs ?? 5000, elapsedMs: 0 });
      } else if (options.signal?.aborted) {
        run.cancelled = true;
        d.guest = 'released';
        return this.summary(false, src, dst, t0, { code: 'CANCELLED', message: 'migration cancelled by the operator', phase: 'precopy', sourceRunning: true });
      }
      if (b.fail && !run.forced) {
        d.guest = 'released';
        if (b.fail.sourceRunning === false) s.guest = 'paused';
        return this.summary(false, src, dst, t0, { code: b.fail.code, message: b.fail.message, phase: 'precopy', sourceRunning: b.fail.sourceRunning !== false });
      }
      s.guest = 'paused';
      d.guest = 'running';
      this.noteRunning();
      s.guest = 'released';
      s.ramBytes = 0;
      d.ramBytes = 32 * MiB;
      run.ok = true;
      onEvent({ type: 'phase', phase: 'commit', elapsedMs: 0, progress: 1 });
      return this.summary(true, src, dst, t0);
    } finally {
      run.end = performance.now();
      this.active--;
      for (const x of [src, dst]) this.perNode.set(x, this.perNode.get(x)! - 1);
    }
  }

  /** Sleeps `ms`, cut short by cancel or force (as the engine notices them at its next phase boundary). */
  private wait(ms: number, o: Partial<MigrationOptions>): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const sigs = [o.signal, o.forceSignal].filter((x): x is AbortSignal => !!x);
      function done() {
        clearTimeout(t);
        for (const s of sigs) s.removeEventListener('abort', done);
        resolve();
      }
      for (const s of sigs) {
        if (s.aborted) return done();
        s.addEventListener('abort', done, { once: true });
      }
    });
  }

  async resumeGuest(node: string): Promise<void> {
    const n = this.nodes.get(node)!;
    if (n.guest !== 'paused') throw new Error(`${node} is ${n.guest}`);
    n.guest = 'running';
    this.noteRunning();
  }

  async releaseGuest(node: string): Promise<void> {
    const n = this.nodes.get(node)!;
    if (n.guest === 'running') throw new Error(`refusing to release the running guest on ${node}`);
    n.guest = 'released';
  }
}

/** A nodes file for `nodes` in a fresh temporary directory (its drain state goes next to it). */
export function fakeInventory(nodes: Array<{ name: string; ram?: string; devices?: string[]; pool?: string }>): Inventory {
  const dir = mkdtempSync(join(tmpdir(), 'baremig-drain-'));
  const file = join(dir, 'nodes.yaml');
  const doc = { cluster: { key: '00'.repeat(32) }, nodes: Object.fromEntries(nodes.map((n, i) => [n.name, { agent: `ws://127.0.0.1:${20000 + i}`, ...(n.ram ? { ram: n.ram } : {}), ...(n.devices ? { devices: n.devices } : {}), ...(n.pool ? { pool: n.pool } : {}) }])) };
  writeFileSync(file, stringify(doc));
  return loadInventory(file);
}

/** Collects a job's events with timestamps, as the CLI does. */
export function collector(): { events: DrainEvent[]; emit: (e: DrainEventBody) => void } {
  const events: DrainEvent[] = [];
  return { events, emit: (e) => events.push({ ...e, ts: Date.now(), mono: performance.now() } as DrainEvent) };
}
