import { PicPair, initialPicShadow, reducePicShadow, type PicShadow, type PicShadowInput } from '../devices/pic/index.js';
import { Pit, pitShadowSpec } from '../devices/pit/index.js';
import type { DeviceFactory } from './machine.js';

/**
 * Device kinds a simulated node can have, by name. Order matters when a node
 * has several: the 8259 pair first, since the others drive its lines.
 */
const FACTORIES: Record<string, DeviceFactory> = {
  pic: {
    kind: 'pic',
    create(m) {
      const pic = new PicPair({ onIntr: (level) => level && m.kick() });
      m.bus.attach(pic);
      m.intc = pic;
      m.intcShadowKind = 'pic';
      return {
        kind: 'pic',
        name: 'pic',
        reset: () => pic.reset(),
        shadow: {
          ports: [
            [0x20, 0x21],
            [0xa0, 0xa1],
            [0x4d0, 0x4d1],
          ],
          initial: initialPicShadow,
          reduce: (s, a) => reducePicShadow(s as PicShadow, a as PicShadowInput),
        },
      };
    },
  },
  pit: {
    kind: 'pit',
    create(m) {
      const intc = m.intc;
      if (!intc) throw new Error("device 'pit' needs 'pic' before it: OUT0 drives IRQ0");
      const pit = new Pit(m.clock, (level) => intc.setIrq(0, level));
      m.bus.attach(pit);
      return { kind: 'pit', name: 'pit', timed: pit, reset: () => pit.reset(), shadow: { ports: pitShadowSpec.ports, initial: pitShadowSpec.initial, reduce: (s, a) => pitShadowSpec.reduce(s, a as never) } };
    },
  },
};

const ORDER = ['pic', 'pit', 'rtl8169'];

export function knownDeviceKinds(): string[] {
  return Object.keys(FACTORIES);
}

export function registerDeviceFactory(f: DeviceFactory): void {
  FACTORIES[f.kind] = f;
}

export function deviceFactories(kinds: string[]): DeviceFactory[] {
  const sorted = [...new Set(kinds)].sort((a, b) => (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99));
  return sorted.map((k) => {
    const f = FACTORIES[k];
    if (!f) throw new Error(`unknown device kind '${k}' (known: ${knownDeviceKinds().join(', ')})`);
    return f;
  });
}
