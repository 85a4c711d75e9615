import type { DeviceFactory } from './machine.js';

/** Device kinds a simulated node can have, by name. */
const FACTORIES: Record<string, DeviceFactory> = {};

export function knownDeviceKinds(): string[] {
  return Object.keys(FACTORIES);
}

export function deviceFactories(kinds: string[]): DeviceFactory[] {
  return kinds.map((k) => {
    const f = FACTORIES[k];
    if (!f) throw new Error(`unknown device kind '${k}' (known: ${knownDeviceKinds().join(', ') || 'none'})`);
    return f;
  });
}
