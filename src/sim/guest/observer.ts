import type { GuestObservation, GuestObserver } from '../../engine/guestObserver.js';
import type { AgentClient } from '../../protocol/client.js';
import { checksumAfter, HEARTBEAT_REGION_BYTES, type HeartbeatView, parseHeartbeat } from './heartbeat.js';
import { BOOT_BLOCK_ADDR } from './layout.js';
import { NET_REGION_BYTES, type NetView, parseNetRegion } from './net/index.js';
import { BOOT_BLOCK_BYTES, GuestOs } from './os.js';

/** Reads the simulated guest's heartbeat out of its RAM, as any hypervisor can. */
export async function readHeartbeat(c: AgentClient): Promise<HeartbeatView | null> {
  const boot = await c.request('memRead', { addr: BOOT_BLOCK_ADDR, len: BOOT_BLOCK_BYTES });
  const hb = GuestOs.findModule(boot.data, 'heartbeat');
  if (!hb) return null;
  const r = await c.request('memRead', { addr: hb.base, len: HEARTBEAT_REGION_BYTES });
  return parseHeartbeat(r.data);
}

/** Reads the simulated guest's network counters (netApp module) out of its RAM, if it has one. */
export async function readNetView(c: AgentClient): Promise<NetView | null> {
  const boot = await c.request('memRead', { addr: BOOT_BLOCK_ADDR, len: BOOT_BLOCK_BYTES });
  const m = GuestOs.findModule(boot.data, 'netApp');
  if (!m) return null;
  return parseNetRegion((await c.request('memRead', { addr: m.base, len: NET_REGION_BYTES })).data);
}

/**
 * Guest-observed downtime and continuity for the simulator's guest: at pause
 * it notes the heartbeat counter and checksum; after resume it waits for more
 * beats, recomputes the checksum chain from the paused values (a guest that
 * restarted, skipped or repeated beats fails it), and takes the gap the guest
 * recorded across the pause.
 */
export class HeartbeatObserver implements GuestObserver {
  private atPauseView: HeartbeatView | null = null;

  constructor(private readonly beatsAfter = 20, private readonly waitMs = 3000) {}

  async atPause(src: AgentClient): Promise<void> {
    this.atPauseView = await readHeartbeat(src).catch(() => null);
  }

  async afterResume(dst: AgentClient): Promise<GuestObservation | null> {
    const p = this.atPauseView;
    if (!p) return null;
    const deadline = performance.now() + this.waitMs;
    let v: HeartbeatView | null = null;
    for (;;) {
      v = await readHeartbeat(dst);
      if (!v) return { guestDowntimeMs: NaN, continued: false, detail: 'heartbeat region missing on the destination' };
      if (v.counter >= p.counter + BigInt(this.beatsAfter) || performance.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    if (v.counter <= p.counter) return { guestDowntimeMs: NaN, continued: false, detail: `heartbeat stopped at ${v.counter}` };
    const continued = checksumAfter(p.checksum, p.counter, v.counter) === v.checksum;
    const gap = v.gaps.find((g) => g.counter === p.counter + 1n);
    // Gaps of up to 3 periods are not recorded by the guest; then that is the bound.
    const guestDowntimeMs = gap ? gap.gapNs / 1e6 : (3 * v.periodNs) / 1e6;
    return { guestDowntimeMs, continued, detail: gap ? undefined : 'gap below the guest recording threshold' };
  }
}
