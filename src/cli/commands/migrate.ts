import { BaremigError } from '../../errors.js';
import { assertNotCordoned } from '../../drain/cordon.js';
import { migrate } from '../../engine/migration.js';
import type { MigrationEvent, MigrationOptions, MigrationSummary } from '../../engine/types.js';
import type { Inventory } from '../../inventory/nodesFile.js';
import { findNode } from '../../inventory/nodesFile.js';
import { parseDuration, parseRate } from '../../inventory/size.js';
import type { AgentClient } from '../../protocol/client.js';
import { HeartbeatObserver } from '../../sim/guest/observer.js';
import { connectNode } from '../connect.js';

export interface MigrateFlags {
  downtimeLimit?: string;
  bandwidth?: string;
  maxRounds?: string;
  onStall?: string;
  maxDowntimeLimit?: string;
  timeout?: string;
}

function num(flag: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new BaremigError('USAGE', `--${flag} must be a number ≥ ${min}, got '${v}'`);
  return n;
}

/** Turns CLI flags into engine options, with clear errors for bad values. */
export function migrationOptions(f: MigrateFlags): Partial<MigrationOptions> {
  const o: Partial<MigrationOptions> = {};
  const dl = num('downtime-limit', f.downtimeLimit, 1);
  if (dl !== undefined) o.downtimeLimitMs = dl;
  if (f.bandwidth !== undefined) {
    const b = parseRate(f.bandwidth);
    if (b === null) throw new BaremigError('USAGE', `--bandwidth '${f.bandwidth}' is not a rate like 1gbit, 100mbit or 125MB/s`);
    o.bandwidth = b;
  }
  const mr = num('max-rounds', f.maxRounds, 1);
  if (mr !== undefined) o.maxRounds = Math.floor(mr);
  if (f.onStall !== undefined) {
    if (f.onStall !== 'raise' && f.onStall !== 'abort') throw new BaremigError('USAGE', `--on-stall must be raise or abort, got '${f.onStall}'`);
    o.onStall = f.onStall;
  }
  const mdl = num('max-downtime-limit', f.maxDowntimeLimit, 1);
  if (mdl !== undefined) o.maxDowntimeLimitMs = mdl;
  if (f.timeout !== undefined) {
    const t = parseDuration(f.timeout);
    if (t === null) throw new BaremigError('USAGE', `--timeout '${f.timeout}' is not a duration like 90s or 10m`);
    o.timeoutMs = t;
  }
  if (o.maxDowntimeLimitMs !== undefined && o.downtimeLimitMs !== undefined && o.maxDowntimeLimitMs < o.downtimeLimitMs) {
    throw new BaremigError('USAGE', '--max-downtime-limit must not be below --downtime-limit');
  }
  return o;
}

/**
 * Connects to both agents named in the inventory and runs one migration.
 * Used by `migrate`, `demo` and `drain`.
 */
export async function runMigration(inv: Inventory, srcName: string, dstName: string, options: Partial<MigrationOptions>, onEvent?: (e: MigrationEvent) => void): Promise<MigrationSummary> {
  if (srcName === dstName) throw new BaremigError('USAGE', `source and destination are both ${srcName}`);
  findNode(inv, srcName);
  const dstEntry = findNode(inv, dstName);
  assertNotCordoned(inv, dstName);
  let src: AgentClient | null = null;
  let dst: AgentClient | null = null;
  try {
    [src, dst] = await Promise.all([connectNode(inv, srcName), connectNode(inv, dstName)]);
    return await migrate({ src, dst, dstDataHost: dstEntry.dataHost, options, observer: new HeartbeatObserver(), ...(onEvent ? { onEvent } : {}) });
  } finally {
    src?.close();
    dst?.close();
  }
}
