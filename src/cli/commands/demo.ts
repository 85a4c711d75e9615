import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MigrationOptions, MigrationSummary } from '../../engine/types.js';
import { loadInventory } from '../../inventory/nodesFile.js';
import { formatBytes } from '../../inventory/size.js';
import { readHeartbeat, readNetView } from '../../sim/guest/observer.js';
import { clusterDown, clusterUp } from '../../sim/localCluster.js';
import { connectNode } from '../connect.js';
import type { Out } from '../output.js';
import { ProgressView } from '../progressView.js';
import { summaryJson, summaryText } from '../summary.js';
import { runMigration } from './migrate.js';

export interface DemoOptions {
  ram: number;
  dirtyRate: number;
  devices: string[];
  warmupMs: number;
  migration: Partial<MigrationOptions>;
}

/**
 * The main job with no set-up: a two-node simulated cluster, a running guest
 * on node17 that dirties memory and beats a heartbeat, a live migration to
 * node42 with progress, a check that the guest goes on there, and clean-up.
 */
export interface NetworkCheck {
  /** UDP datagrams the peer received from the guest before and after the migration. */
  datagramsBefore: number;
  datagramsAfter: number;
  lost: number;
  duplicates: number;
  outOfOrder: number;
  pingsSent: number;
  pingsAnswered: number;
  pingDuplicates: number;
}

export async function runDemo(o: DemoOptions, out: Out, signal: AbortSignal): Promise<{ summary: MigrationSummary; heartbeatAfter: { before: string; after: string; advancing: boolean } | null; network: NetworkCheck | null }> {
  const dir = mkdtempSync(join(tmpdir(), 'baremig-demo-'));
  try {
    const networked = o.devices.includes('rtl8169');
    out.info(`starting a simulated cluster: node17 (guest, ${formatBytes(o.ram)} RAM, dirtying ${(o.dirtyRate / 1e6).toFixed(0)} MB/s${o.devices.length ? `, devices ${o.devices.join(', ')}` : ''}) and node42 (idle)${networked ? ', on a service network with a peer that pings the guest every 10 ms and receives its UDP stream' : ''}`);
    const { record } = await clusterUp({ dir, nodes: ['node17', 'node42'], ram: o.ram, guests: ['node17'], devices: o.devices, dirtyRate: o.dirtyRate, fillFraction: 0.5, seed: 1, detached: false, peer: networked });
    const inv = loadInventory(record.nodesFile);
    const src = await connectNode(inv, 'node17');
    const hb0 = await readHeartbeat(src);
    await new Promise((r) => setTimeout(r, o.warmupMs));
    const hb1 = await readHeartbeat(src);
    src.close();
    out.info(`guest running on node17: heartbeat ${hb0?.counter} → ${hb1?.counter} in ${o.warmupMs} ms`);
    const peer = networked ? await connectNode(inv, 'peer') : null;
    const netBefore = peer ? await readNetView(peer) : null;
    out.info('migrating node17 → node42 while the guest runs');
    const view = ProgressView.auto(out.json, 'node17→node42');
    const summary = await runMigration(inv, 'node17', 'node42', { ...o.migration, ...(signal ? { signal } : {}) }, (e) => view.on(e));
    view.stop(summary.ok);
    let heartbeatAfter = null;
    if (summary.ok) {
      const dst = await connectNode(inv, 'node42');
      const a = await readHeartbeat(dst);
      await new Promise((r) => setTimeout(r, 200));
      const b = await readHeartbeat(dst);
      dst.close();
      heartbeatAfter = { before: String(a?.counter), after: String(b?.counter), advancing: !!a && !!b && b.counter > a.counter };
    }
    let network: NetworkCheck | null = null;
    if (peer && netBefore) {
      if (summary.ok) await new Promise((r) => setTimeout(r, 500));
      const n = await readNetView(peer);
      peer.close();
      if (n) {
        network = {
          datagramsBefore: netBefore.sink.received,
          datagramsAfter: n.sink.received,
          lost: n.sink.missing,
          duplicates: n.sink.duplicates,
          outOfOrder: n.sink.outOfOrder,
          pingsSent: n.ping.sent,
          pingsAnswered: n.ping.received,
          pingDuplicates: n.ping.duplicates,
        };
      }
    }
    return { summary, heartbeatAfter, network };
  } finally {
    await clusterDown(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

export function demoResult(r: Awaited<ReturnType<typeof runDemo>>): { obj: Record<string, unknown>; text: string; ok: boolean } {
  const n = r.network;
  const netOk = n === null || (n.datagramsAfter > n.datagramsBefore && n.duplicates === 0 && n.outOfOrder === 0 && n.pingDuplicates === 0);
  const ok = r.summary.ok && r.heartbeatAfter?.advancing === true && r.summary.guestContinued === true && netOk;
  const obj = { ...summaryJson(r.summary), ok, heartbeatOnDestination: r.heartbeatAfter, network: n };
  const text = `${summaryText(r.summary)}${r.heartbeatAfter ? `\n  heartbeat on node42 ${r.heartbeatAfter.before} → ${r.heartbeatAfter.after} in 200 ms: ${r.heartbeatAfter.advancing ? 'the guest continues on node42' : 'NOT ADVANCING'}` : ''}${
    n
      ? `\n  network           peer received ${n.datagramsAfter} UDP datagrams (${n.datagramsBefore} before the migration), ${n.lost} lost, ${n.duplicates} duplicated, ${n.outOfOrder} out of order; ping ${n.pingsAnswered}/${n.pingsSent} answered, ${n.pingDuplicates} duplicated`
      : ''
  }`;
  return { obj, text, ok };
}
