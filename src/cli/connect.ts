import { BaremigError } from '../errors.js';
import { AgentClient } from '../protocol/client.js';
import { isL2Url } from '../protocol/l2/transport.js';
import { type Inventory, findNode, loadInventory } from '../inventory/nodesFile.js';
import { resolveNodesFile } from './clusterDir.js';

export function inventoryFrom(flag?: string): Inventory {
  return loadInventory(resolveNodesFile(flag));
}

/**
 * Connects to a node's agent: ws:// / wss:// (the simulator's agent), or
 * l2:// (a native agent on the raw migration link, through the l2 transport's
 * helper; src/protocol/l2/transport.ts). Failures name the node.
 */
export async function connectNode(inv: Inventory, name: string, timeoutMs = 5000): Promise<AgentClient> {
  const n = findNode(inv, name);
  try {
    return await AgentClient.connect(n.agent, { node: n.name, key: n.key, connectTimeoutMs: timeoutMs });
  } catch (e) {
    // the l2 helper's errors name the link address only
    if (isL2Url(n.agent) && e instanceof BaremigError && !e.message.includes(`agent ${n.name} `)) throw new BaremigError(e.code, `agent ${n.name}: ${e.message}`, e.details);
    throw e;
  }
}
