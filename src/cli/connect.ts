import { AgentClient } from '../protocol/client.js';
import { type Inventory, findNode, loadInventory } from '../inventory/nodesFile.js';
import { resolveNodesFile } from './clusterDir.js';

export function inventoryFrom(flag?: string): Inventory {
  return loadInventory(resolveNodesFile(flag));
}

export async function connectNode(inv: Inventory, name: string, timeoutMs = 5000): Promise<AgentClient> {
  const n = findNode(inv, name);
  return AgentClient.connect(n.agent, { node: n.name, key: n.key, connectTimeoutMs: timeoutMs });
}
