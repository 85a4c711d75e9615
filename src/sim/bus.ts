import type { AccessSize } from '../devices/io.js';

/** A device as the bus sees it: port ranges and/or one MMIO window. */
export interface BusDevice {
  readonly name: string;
  /** Inclusive port ranges [first, last]. */
  readonly ports?: ReadonlyArray<readonly [number, number]>;
  /** Guest-physical MMIO window (a BAR). */
  readonly mmio?: { base: number; size: number };
  portRead?(port: number, size: AccessSize): number;
  portWrite?(port: number, size: AccessSize, value: number): void;
  mmioRead?(offset: number, size: AccessSize): number;
  mmioWrite?(offset: number, size: AccessSize, value: number): void;
}

/** One guest access the hypervisor intercepted (what shadow reducers consume). */
export interface PortAccess {
  dir: 'in' | 'out';
  port: number;
  size: AccessSize;
  value: number;
}

export type PortTrap = (access: PortAccess) => void;

/**
 * Dispatches port I/O and MMIO to device models. Unclaimed ports read as
 * all-ones and ignore writes, as on a PC's ISA bus. The hypervisor registers
 * traps on the few ports it must watch (the 8254/8259); a trap sees the
 * access after the device has handled it, with the value read or written.
 */
export class DeviceBus {
  private readonly portMap = new Map<number, BusDevice>();
  private readonly mmioDevices: BusDevice[] = [];
  private readonly traps = new Map<number, PortTrap[]>();
  private readonly byName = new Map<string, BusDevice>();

  attach(dev: BusDevice): void {
    if (this.byName.has(dev.name)) throw new Error(`device ${dev.name} already attached`);
    for (const [a, b] of dev.ports ?? []) {
      for (let p = a; p <= b; p++) {
        const other = this.portMap.get(p);
        if (other) throw new Error(`port 0x${p.toString(16)} claimed by ${other.name} and ${dev.name}`);
        this.portMap.set(p, dev);
      }
    }
    if (dev.mmio) {
      for (const o of this.mmioDevices) {
        const m = o.mmio!;
        if (dev.mmio.base < m.base + m.size && m.base < dev.mmio.base + dev.mmio.size) {
          throw new Error(`MMIO window of ${dev.name} overlaps ${o.name}`);
        }
      }
      this.mmioDevices.push(dev);
    }
    this.byName.set(dev.name, dev);
  }

  device(name: string): BusDevice | undefined {
    return this.byName.get(name);
  }

  devices(): BusDevice[] {
    return [...this.byName.values()];
  }

  /** Intercept guest accesses to these ports (the hypervisor's port traps). */
  trap(first: number, last: number, fn: PortTrap): void {
    for (let p = first; p <= last; p++) {
      const list = this.traps.get(p);
      if (list) list.push(fn);
      else this.traps.set(p, [fn]);
    }
  }

  /** Guest port input: the device answers, then traps observe. */
  in(port: number, size: AccessSize): number {
    const value = this.rawIn(port, size);
    const t = this.traps.get(port);
    if (t) for (const fn of t) fn({ dir: 'in', port, size, value });
    return value;
  }

  out(port: number, size: AccessSize, value: number): void {
    this.rawOut(port, size, value);
    const t = this.traps.get(port);
    if (t) for (const fn of t) fn({ dir: 'out', port, size, value });
  }

  /**
   * Port access by the agent itself (IoPrograms): the device answers, and the
   * hypervisor's watchers of the chip see it too — a shadow must follow every
   * access that changes the chip's hidden state (flip-flops, latches, the
   * programmed mode), the guest's and the agent's own, or it no longer
   * describes the chip. On a destination that is how the shadow comes to
   * know the chip the restore programmed; on a source, the capture's own
   * latches and reads keep chip and shadow in step.
   */
  agentIn(port: number, size: AccessSize): number {
    return this.in(port, size);
  }

  agentOut(port: number, size: AccessSize, value: number): void {
    this.out(port, size, value);
  }

  /** Port access that no trap sees (device models' own plumbing, tests). */
  rawIn(port: number, size: AccessSize): number {
    const dev = this.portMap.get(port);
    if (!dev?.portRead) return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
    return dev.portRead(port, size);
  }

  rawOut(port: number, size: AccessSize, value: number): void {
    const dev = this.portMap.get(port);
    dev?.portWrite?.(port, size, value);
  }

  private mmioFind(addr: number, size: number): BusDevice | undefined {
    for (const d of this.mmioDevices) {
      const m = d.mmio!;
      if (addr >= m.base && addr + size <= m.base + m.size) return d;
    }
    return undefined;
  }

  mmioRead(addr: number, size: AccessSize): number {
    const dev = this.mmioFind(addr, size);
    if (!dev?.mmioRead) return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
    return dev.mmioRead(addr - dev.mmio!.base, size);
  }

  mmioWrite(addr: number, size: AccessSize, value: number): void {
    const dev = this.mmioFind(addr, size);
    dev?.mmioWrite?.(addr - dev.mmio!.base, size, value);
  }

  isMmio(addr: number, size: number): boolean {
    return this.mmioFind(addr, size) !== undefined;
  }
}
