import type { DeviceAccess, IoProgram, Reconstructor, ShadowLog } from '../devices/io.js';
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

/** Round trips and agent time of the programs a reconstructor ran. */
interface Metered extends DeviceAccess {
  programs: number;
  agentUs: number;
  rttMs: number;
}

function metered(acc: DeviceAccess): Metered {
  const m: Metered = {
    programs: 0,
    agentUs: 0,
    rttMs: 0,
    async run(program: IoProgram) {
      const t0 = performance.now();
      const r = await acc.run(program);
      m.programs++;
      m.agentUs += r.elapsedUs;
      m.rttMs += performance.now() - t0;
      return r;
    },
    shadow: () => acc.shadow(),
  };
  return m;
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
  /** The reconstructor's prepare() on the destination, when it has one and it succeeded. */
  prepared?: unknown;
  /** Figures of the capture: programs, agent time, round-trip time. */
  meter?: { programs: number; agentMs: number; rttMs: number };
}

/**
 * Captures every device on the paused source, in restore order. The
 * hypervisor's shadow does not change while the guest is paused: it is
 * fetched once for all devices. With `dst`, each reconstructor's prepare()
 * (destination reads that need nothing captured) runs beside the captures,
 * so restore does not spend a round trip of the downtime on it; a prepare
 * that fails is simply redone by restore.
 */
export async function captureDevices(src: AgentClient, plan: ReturnType<typeof planDevices>, dst?: AgentClient): Promise<CapturedDevice[]> {
  const base = remoteAccess(src);
  let shadow: Promise<ShadowLog> | null = null;
  const acc: DeviceAccess = { run: (p) => base.run(p), shadow: () => (shadow ??= base.shadow()) };
  const dstAcc = dst ? remoteAccess(dst) : null;
  const prepared = plan.map((p) => (dstAcc && p.rec.prepare ? p.rec.prepare(dstAcc).catch(() => undefined) : Promise.resolve(undefined)));
  const out: CapturedDevice[] = [];
  try {
    for (const p of plan) {
      const t0 = performance.now();
      const m = metered(acc);
      try {
        out.push({ plan: p, state: await p.rec.capture(m), captureMs: performance.now() - t0, meter: { programs: m.programs, agentMs: m.agentUs / 1000, rttMs: m.rttMs } });
      } catch (e) {
        throw new BaremigError('DEVICE', `capturing ${p.src.name} (${p.src.kind}) on the source failed: ${(e as Error).message}`);
      }
    }
  } finally {
    // Whatever happens, no destination read is left in flight.
    const got = await Promise.all(prepared);
    out.forEach((c, i) => {
      if (got[i] !== undefined) c.prepared = got[i];
    });
  }
  return out;
}

export async function restoreDevices(dst: AgentClient, captured: CapturedDevice[]): Promise<DeviceReport[]> {
  const base = remoteAccess(dst);
  const reports: DeviceReport[] = [];
  for (const c of captured) {
    const t0 = performance.now();
    const m = metered(base);
    try {
      const r = await c.plan.rec.restore(m, c.state, c.prepared);
      const extra: Record<string, number> = { ...(r.extra ?? {}) };
      if (c.meter) {
        extra['capturePrograms'] = c.meter.programs;
        extra['captureAgentMs'] = round2(c.meter.agentMs);
        extra['captureRttMs'] = round2(c.meter.rttMs);
      }
      extra['restoreAgentMs'] = round2(m.agentUs / 1000);
      extra['restoreRttMs'] = round2(m.rttMs);
      reports.push({ kind: c.plan.src.kind, name: c.plan.src.name, captureMs: c.captureMs, restoreMs: performance.now() - t0, programs: r.programs, ops: r.ops, extra });
    } catch (e) {
      throw new BaremigError('DEVICE', `restoring ${c.plan.dst.name} (${c.plan.dst.kind}) on the destination failed: ${(e as Error).message}`);
    }
  }
  return reports;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/** Undo capture probes on the source before it resumes (rollback path). */
export async function rollbackDevices(src: AgentClient, captured: CapturedDevice[]): Promise<void> {
  const acc = remoteAccess(src);
  for (const c of captured) await c.plan.rec.rollback?.(acc, c.state);
}

/**
 * Restore-time estimate per device kind, ms, from measured restores: the
 * 8254 restore waits for the counters' phase (at most one CLK for a mode 2
 * tick, half a period for a mode 3 low half; the optional waits of a mode
 * 0/4 counter past terminal count are capped at PIT_RESTORE_BUDGET_US = 8 ms
 * by the registry, so they fit), the 8259 is a few port writes, the RTL8169
 * sends dummy frames (one program; its PHY reads ran beside the capture).
 * A mode 3 tick slower than 100 Hz can exceed the 8254's estimate by up to
 * half its period: that wait is what keeps OUT right and is always taken.
 */
const RESTORE_ESTIMATE_MS: Record<string, number> = { pit: 10, pic: 3, rtl8169: 20 };

export function restoreEstimateMs(plan: ReturnType<typeof planDevices>, rttMs: number): number {
  return plan.reduce((sum, p) => sum + (RESTORE_ESTIMATE_MS[p.src.kind] ?? 10) + 2 * rttMs, 0);
}
