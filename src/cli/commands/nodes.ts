import { asBaremigError } from '../../errors.js';
import type { Inventory } from '../../inventory/nodesFile.js';
import { formatBytes } from '../../inventory/size.js';
import { connectNode } from '../connect.js';

export interface NodeStatus {
  name: string;
  agent: string;
  reachable: boolean;
  guest?: string;
  ramBytes?: number;
  ramCapacity?: number;
  devices?: string[];
  /** Dirty logging on: the guest is part of a migration (or one that was interrupted). */
  dirtyLog?: boolean;
  error?: { code: string; message: string };
}

/** Asks every node in the inventory for its state, in parallel; an unreachable node is reported, not fatal. */
export async function nodeStatuses(inv: Inventory, timeoutMs = 3000): Promise<NodeStatus[]> {
  return Promise.all(
    [...inv.nodes.values()].map(async (n): Promise<NodeStatus> => {
      try {
        const c = await connectNode(inv, n.name, timeoutMs);
        try {
          const s = await c.request('state', {}, timeoutMs);
          return { name: n.name, agent: n.agent, reachable: true, guest: s.guest, ramBytes: s.ramBytes, ramCapacity: s.ramCapacity, devices: s.devices.map((d) => d.kind), dirtyLog: s.dirtyLog };
        } finally {
          c.close();
        }
      } catch (e) {
        const err = asBaremigError(e);
        return { name: n.name, agent: n.agent, reachable: false, error: { code: err.code, message: err.message } };
      }
    }),
  );
}

export function nodesText(list: NodeStatus[]): string {
  const rows = list.map((n) =>
    n.reachable
      ? `${n.name.padEnd(12)} ${'up'.padEnd(6)} ${(n.guest === 'running' || n.guest === 'paused' || n.guest === 'incoming' ? `guest ${n.guest}` : 'idle').padEnd(16)} ${n.guest === 'running' || n.guest === 'paused' ? formatBytes(n.ramBytes ?? 0) : ''} ${n.devices?.length ? `[${n.devices.join(',')}]` : ''}`
      : `${n.name.padEnd(12)} ${'DOWN'.padEnd(6)} ${n.error?.message ?? ''}`,
  );
  return [`${'NODE'.padEnd(12)} ${'AGENT'.padEnd(6)} ${'GUEST'.padEnd(16)} RAM`, ...rows].join('\n');
}
