/**
 * Test rig: one Pit on a DeviceBus over a ManualClock, the hypervisor's port
 * traps feeding the shadow reducer, an IoTarget whose `delay` advances the
 * clock, and a DeviceAccess for the reconstructor. Guest accesses go through
 * the trapped bus (bus.in/out); reconstructor programs go raw, as on a node.
 */
import type { AccessSize, DeviceAccess } from '../io.js';
import { DeviceBus } from '../../sim/bus.js';
import { ManualClock } from '../../sim/clock.js';
import { GuestMemory } from '../../sim/guestMemory.js';
import { type IoTarget, localAccess } from '../../sim/ioProgram.js';
import { Pit } from './model.js';
import { PIT_SHADOW_KEY, type PitShadow, initialPitShadow, pitShadowSpec, reducePitShadow } from './shadow.js';
import { pulseTimeNs, pulsesAt } from './registers.js';

let sharedMem: GuestMemory | null = null;

export interface PitRig {
  clock: ManualClock;
  bus: DeviceBus;
  pit: Pit;
  /** IRQ0 levels as the PIT drove them, with the node ns of each call. */
  irq: Array<{ ns: number; level: boolean }>;
  shadow(): PitShadow;
  target: IoTarget;
  access: DeviceAccess & { programs: number };
  /** Guest port output (trapped). */
  out(port: number, value: number, size?: AccessSize): void;
  /** Guest port input (trapped). */
  in(port: number, size?: AccessSize): number;
  /** Let node time pass. */
  advanceNs(ns: number): void;
  /** Advance to the next CLK pulse (exactly one pulse later). */
  nextPulse(): void;
}

export function pitRig(startNs = 0): PitRig {
  const clock = new ManualClock(startNs);
  const irq: PitRig['irq'] = [];
  const pit = new Pit(clock, (level) => irq.push({ ns: clock.nowNs(), level }));
  const bus = new DeviceBus();
  bus.attach(pit);
  let shadow = initialPitShadow();
  for (const [a, b] of pitShadowSpec.ports) bus.trap(a, b, (acc) => (shadow = reducePitShadow(shadow, acc)));
  sharedMem ??= new GuestMemory(1 << 20);
  const target: IoTarget = {
    bus,
    mem: sharedMem,
    async delay(us: number) {
      clock.advance(Math.round(us * 1000));
    },
    advance() {
      pit.advanceTo(clock.nowNs());
    },
    nowUs: () => clock.nowNs() / 1000,
  };
  return {
    clock,
    bus,
    pit,
    irq,
    shadow: () => shadow,
    target,
    access: localAccess(target, () => ({ [PIT_SHADOW_KEY]: shadow })),
    out: (port, value, size = 1) => bus.out(port, size, value),
    in: (port, size = 1) => bus.in(port, size),
    advanceNs(ns: number) {
      clock.advance(ns);
      pit.advanceTo(clock.nowNs());
    },
    nextPulse() {
      clock.set(pulseTimeNs(pulsesAt(clock.nowNs()) + 1));
      pit.advanceTo(clock.nowNs());
    },
  };
}
