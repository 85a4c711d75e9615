import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, renameSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BaremigError } from '../errors.js';

/** What `cluster up` leaves behind so that `cluster down` can find its processes. */
export interface ClusterRecord {
  createdAt: string;
  nodesFile: string;
  nodes: Array<{ name: string; pid: number; url: string; log: string }>;
  /** The service network's switch process, when the nodes have NICs. */
  switch?: { pid: number; log: string };
}

export function defaultClusterDir(): string {
  return resolve(process.env.BAREMIG_HOME ?? '.baremig');
}

/** The nodes file to use: --nodes-file, then $BAREMIG_NODES, then the simulated cluster's. */
export function resolveNodesFile(flag?: string): string {
  return resolve(flag ?? process.env.BAREMIG_NODES ?? join(defaultClusterDir(), 'nodes.yaml'));
}

export function recordPath(dir: string): string {
  return join(dir, 'cluster.json');
}

export function readRecord(dir: string): ClusterRecord | null {
  const p = recordPath(dir);
  if (!existsSync(p)) return null;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as ClusterRecord;
  } catch (e) {
    throw new BaremigError('INVENTORY', `${p} is unreadable (${(e as Error).message}); remove it after stopping any baremig node processes`);
  }
}

/** Atomic write: a crash never leaves half a file. */
export function writeFileAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, path);
}

export function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** True when `pid` is one of our simulated node processes (not a recycled pid). */
export function isNodeProcess(pid: number): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes('node/main') || cmd.includes('network/main');
  } catch {
    return isAlive(pid);
  }
}

export function removeClusterFiles(dir: string): void {
  for (const f of ['cluster.json', 'nodes.yaml']) rmSync(join(dir, f), { force: true });
  const logs = join(dir, 'logs');
  if (existsSync(logs) && readdirSync(logs).length >= 0) rmSync(logs, { recursive: true, force: true });
}
