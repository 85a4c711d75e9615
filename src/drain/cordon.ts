import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../cli/clusterDir.js';
import { BaremigError } from '../errors.js';
import { type Inventory, findNode } from '../inventory/nodesFile.js';
import { drainStateDir, ensureStateDir, fsyncDir, withLock } from './stateDir.js';

/**
 * Cordons: nodes no migration may target. Kept in `cordons.json` in the
 * drain state directory (next to the nodes file), so that every coordinator
 * process honours them; changed under a lock, written atomically.
 */
export interface CordonEntry {
  since: string;
  by: string;
}

export type Cordons = Record<string, CordonEntry>;

function cordonFile(stateDir: string): string {
  return join(stateDir, 'cordons.json');
}

export function readCordons(stateDir: string): Cordons {
  const f = cordonFile(stateDir);
  if (!existsSync(f)) return {};
  try {
    const v = JSON.parse(readFileSync(f, 'utf8')) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Cordons;
  } catch (e) {
    throw new BaremigError('INVENTORY', `${f} is unreadable (${(e as Error).message}): fix or remove it (it lists cordoned nodes)`);
  }
}

function update(stateDir: string, fn: (c: Cordons) => string[]): string[] {
  ensureStateDir(stateDir);
  return withLock(join(stateDir, 'cordons.lock'), () => {
    const c = readCordons(stateDir);
    const changed = fn(c);
    if (changed.length) {
      writeFileAtomic(cordonFile(stateDir), `${JSON.stringify(c, null, 2)}\n`);
      fsyncDir(stateDir);
    }
    return changed;
  });
}

/** Cordons `nodes`; returns those that were not cordoned before. */
export function cordon(stateDir: string, nodes: string[], by: string): string[] {
  return update(stateDir, (c) => {
    const added: string[] = [];
    for (const n of nodes) {
      if (c[n]) continue;
      c[n] = { since: new Date().toISOString(), by };
      added.push(n);
    }
    return added;
  });
}

/** Uncordons `nodes`; returns those that were cordoned. */
export function uncordon(stateDir: string, nodes: string[]): string[] {
  return update(stateDir, (c) => {
    const removed = nodes.filter((n) => c[n]);
    for (const n of removed) delete c[n];
    return removed;
  });
}

export function cordonedSet(stateDir: string): Set<string> {
  return new Set(Object.keys(readCordons(stateDir)));
}

/** `migrate` and `drain` call this before moving a guest to `node`. */
export function assertNotCordoned(inv: Inventory, node: string): void {
  findNode(inv, node);
  const c = readCordons(drainStateDir(inv.file))[node];
  if (c) throw new BaremigError('CORDONED', `${node} is cordoned (since ${c.since}, by ${c.by}): no migration may target it; 'baremig uncordon ${node}' makes it a destination again`, { node });
}
