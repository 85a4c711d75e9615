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

/** Rough restore-time estimate per device kind before we have measured one, ms. */
export function restoreEstimateMs(plan: ReturnType<typeof planDevices>, rttMs: number): number {
  return plan.reduce((sum, p) => sum + (p.src.kind === 'rtl8169' ? 20 : 2) + rttMs, 0);
}
