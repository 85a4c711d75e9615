import type { DeviceAccess, IoProgram, Reconstructor } from '../devices/io.js';
import { BaremigError } from '../errors.js';
import type { AgentClient } from '../protocol/client.js';
import { type DeviceDescriptor, reconstructorFor, restoreOrder } from '../devices/registry.js';
import type { DeviceReport } from './types.js';

/** The agent's program runner and shadow, as a reconstructor sees them. */
export function remoteAccess(c: AgentClient): DeviceAccess {
  return {
    run: (program: IoProgram) => c.request('runProgram', { program }),
    shadow: async () => (await c.request('shadow', {})).shadow,
  };
}

/** Devices of the source that the destination must have, and that we know how to move. */
export function planDevices(src: DeviceDescriptor[], dst: DeviceDescriptor[]): Array<{ src: DeviceDescriptor; dst: DeviceDescriptor; rec: Reconstructor<unknown> }> {
  const ordered = [...src].sort((a, b) => restoreOrder(a.kind) - restoreOrder(b.kind));
  return ordered.map((d) => {
    const rec = reconstructorFor(d);
    if (!rec) throw new BaremigError('DEVICE', `no reconstructor for device ${d.name} (${d.kind}): this guest cannot be migrated by this baremig`);
    const peer = dst.find((x) => x.kind === d.kind && x.name === d.name) ?? dst.find((x) => x.kind === d.kind);
    if (!peer) throw new BaremigError('DEVICE', `destination has no ${d.kind} device for the guest's ${d.name}: hardware on both ends must match`);
    return { src: d, dst: peer, rec };
  });
}

export interface CapturedDevice {
  plan: ReturnType<typeof planDevices>[number];
  state: unknown;
  captureMs: number;
}

export async function captureDevices(src: AgentClient, plan: ReturnType<typeof planDevices>): Promise<CapturedDevice[]> {
  const acc = remoteAccess(src);
  const out: CapturedDevice[] = [];
  for (const p of plan) {
    const t0 = performance.now();
    try {
      out.push({ plan: p, state: await p.rec.capture(acc), captureMs: performance.now() - t0 });
    } catch (e) {
      throw new BaremigError('DEVICE', `capturing ${p.src.name} (${p.src.kind}) on the source failed: ${(e as Error).message}`);
    }
  }
  return out;
}

export async function restoreDevices(dst: AgentClient, captured: CapturedDevice[]): Promise<DeviceReport[]> {
  const acc = remoteAccess(dst);
  const reports: DeviceReport[] = [];
  for (const c of captured) {
    const t0 = performance.now();
    try {
      const r = await c.plan.rec.restore(acc, c.state);
      reports.push({ kind: c.plan.src.kind, name: c.plan.src.name, captureMs: c.captureMs, restoreMs: performance.now() - t0, programs: r.programs, ops: r.ops, ...(r.extra ? { extra: r.extra } : {}) });
    } catch (e) {
      throw new BaremigError('DEVICE', `restoring ${c.plan.dst.name} (${c.plan.dst.kind}) on the destination failed: ${(e as Error).message}`);
    }
  }
  return reports;
}

/** Undo capture probes on the source before it resumes (rollback path). */
export async function rollbackDevices(src: AgentClient, captured: CapturedDevice[]): Promise<void> {
  const acc = remoteAccess(src);
  for (const c of captured) await c.plan.rec.rollback?.(acc, c.state);
}

/**
 * Restore-time estimate per device kind, ms, from measured restores: the
 * 8254 restore waits for the counters' phase (4.8 ms measured for a 1000 Hz
 * tick; up to its 60 ms budget for a mode 0/4 counter past terminal count),
 * the 8259 is a few port writes, the RTL8169 sends dummy frames and may wait
 * for its PHY.
 */
const RESTORE_ESTIMATE_MS: Record<string, number> = { pit: 10, pic: 3, rtl8169: 20 };

export function restoreEstimateMs(plan: ReturnType<typeof planDevices>, rttMs: number): number {
  return plan.reduce((sum, p) => sum + (RESTORE_ESTIMATE_MS[p.src.kind] ?? 10) + 2 * rttMs, 0);
}
