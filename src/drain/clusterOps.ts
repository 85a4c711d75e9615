import { runMigration } from '../cli/commands/migrate.js';
import { nodeStatuses } from '../cli/commands/nodes.js';
import { connectNode } from '../cli/connect.js';
import type { Inventory } from '../inventory/nodesFile.js';
import type { ClusterOps } from './types.js';

/** The drain's view of a real (or simulated) cluster: its agents, as the nodes file lists them. */
export function agentOps(inv: Inventory): ClusterOps {
  return {
    statuses(nodes) {
      if (!nodes) return nodeStatuses(inv);
      const sub: Inventory = { file: inv.file, nodes: new Map([...inv.nodes].filter(([n]) => nodes.includes(n))) };
      return nodeStatuses(sub);
    },
    migrate: (src, dst, options, onEvent) => runMigration(inv, src, dst, options, onEvent),
    async resumeGuest(node) {
      const c = await connectNode(inv, node);
      try {
        // As the engine's rollback does: stop the dirty log the dead coordinator started, then run.
        await c.request('dirtyLogStop', {}, 5000);
        await c.request('resume', {}, 5000);
      } finally {
        c.close();
      }
    },
    async releaseGuest(node) {
      const c = await connectNode(inv, node);
      try {
        await c.request('release', {}, 5000);
      } finally {
        c.close();
      }
    },
  };
}
