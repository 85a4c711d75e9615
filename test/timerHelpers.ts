import type { AgentClient } from '../src/protocol/client.js';
import { BOOT_BLOCK_ADDR } from '../src/sim/guest/layout.js';
import { BOOT_BLOCK_BYTES, GuestOs } from '../src/sim/guest/os.js';
import { TIMER_REGION_BYTES, type TimerView, parseTimer } from '../src/sim/guest/timer.js';

/** The guest timer module's region, read through the agent (as the guest would see it). */
export async function readTimer(c: AgentClient): Promise<TimerView> {
  const boot = await c.request('memRead', { addr: BOOT_BLOCK_ADDR, len: BOOT_BLOCK_BYTES });
  const t = GuestOs.findModule(boot.data, 'timer')!;
  return parseTimer((await c.request('memRead', { addr: t.base, len: TIMER_REGION_BYTES })).data);
}

/** Interrupts the guest took per second of its own time over `ms`; the two readings are returned too. */
export async function tickRate(c: AgentClient, ms = 600): Promise<{ rate: number; a: TimerView; b: TimerView }> {
  const a = await readTimer(c);
  await new Promise((r) => setTimeout(r, ms));
  const b = await readTimer(c);
  return { rate: (Number(b.delivered - a.delivered) * 1e9) / (b.lastTickNs - a.lastTickNs), a, b };
}
