import type { Reconstructor } from './io.js';
import { picReconstructor } from './pic/index.js';
import { createPitReconstructor } from './pit/index.js';
import { createRtl8169Reconstructor } from './rtl8169/index.js';
import { BaremigError } from '../errors.js';

/** A device of a node as the agent describes it. */
export interface DeviceDescriptor {
  kind: string;
  name: string;
  mmioBase?: number;
}

type Factory = (d: DeviceDescriptor) => Reconstructor<unknown>;

/** Longest optional wait of an 8254 restore in a migration, µs (within the engine's 10 ms estimate for the device). */
export const PIT_RESTORE_BUDGET_US = 8_000;

/**
 * Reconstructors by device kind, and the order restores run in: the 8259
 * last, because it must see the lines of the devices that drive it (8254
 * OUT0, the NIC's interrupt) at their restored levels (src/devices/pic).
 */
const KINDS: Record<string, { order: number; make: Factory }> = {
  // The 8254's optional waits (an exact count past terminal count) get the
  // budget the engine's downtime estimate gives the device (devicePhase.ts),
  // not the reconstructor's 60 ms default.
  pit: { order: 10, make: () => createPitReconstructor({ maxWaitUs: PIT_RESTORE_BUDGET_US }) as Reconstructor<unknown> },
  pic: { order: 90, make: () => picReconstructor as Reconstructor<unknown> },
  rtl8169: {
    order: 50,
    make: (d) => {
      if (d.mmioBase === undefined) throw new BaremigError('DEVICE', `NIC ${d.name}: the agent did not report its MMIO base`);
      return createRtl8169Reconstructor({ mmioBase: d.mmioBase, device: d.name }) as Reconstructor<unknown>;
    },
  },
};

export function reconstructorFor(d: DeviceDescriptor): Reconstructor<unknown> | undefined {
  return KINDS[d.kind]?.make(d);
}

export function restoreOrder(kind: string): number {
  return KINDS[kind]?.order ?? 50;
}

/** Kinds extended at start-up by devices whose reconstructor needs configuration. */
export function registerDeviceKind(kind: string, order: number, make: Factory): void {
  KINDS[kind] = { order, make };
}
