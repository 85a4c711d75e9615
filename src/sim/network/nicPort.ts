/**
 * Puts an RTL8169 into a simulated node and plugs its cable into a switch
 * port: the NIC model on the node's bus at its BAR, its transmit callback
 * sending on the port, frames from the port handed to receiveFrame(), its
 * interrupt line to the node's interrupt controller, its timers run by the
 * machine, the hypervisor's shadow of its BAR, and the guest modules that
 * drive it ('nic', 'netApp') registered with the node's guest OS.
 *
 * Interrupts: the NIC's INTx goes to input `irq` of machine.intc (the 8259
 * pair, when the node has one; the guest's PIC code must unmask that line).
 * A node without an interrupt controller gets a direct level-triggered line
 * to the vCPU with vector 0x20 + irq (a flat interrupt route, no 8259 to
 * program), so the NIC works on nodes that model no PIC.
 *
 * Guest RAM: the NIC is created with the machine (before any guest) and
 * outlives guests, so its DMA goes through a view of whatever RAM the
 * machine has now; with no guest RAM every DMA is outside RAM (the model
 * raises SysErr and drops the frame), as on a node whose OS is gone.
 */
import type { AccessSize } from '../../devices/io.js';
import type { InterruptController } from '../../devices/irq.js';
import { type LinkPartner, Rtl8169 } from '../../devices/rtl8169/model.js';
import { RTL_BAR_SIZE } from '../../devices/rtl8169/registers.js';
import { RTL_SHADOW_KEY, type RtlShadow, initialRtlShadow, reduceRtlShadow } from '../../devices/rtl8169/shadow.js';
import type { BusDevice } from '../bus.js';
import { DEFAULT_NIC_MMIO, registerGuestNet } from '../guest/net/index.js';
import type { GuestMemory } from '../guestMemory.js';
import type { DeviceFactory, Machine, SimDevice } from '../machine.js';
import { macFromName, parseMac } from './mac.js';
import type { FramePort } from './udp.js';

export const DEFAULT_NIC_IRQ = 11;

export interface NicPortOptions {
  /** Device name (the reconstructor and injectFrame address it by name). */
  name?: string;
  mmioBase?: number;
  /** EEPROM MAC ("02:ba:..."); default derived from the machine's name. */
  mac?: string;
  irq?: number;
  /** PHY autonegotiation time; real chips take ~1.5 s. */
  autonegMs?: number;
  /** The cable; none = unplugged (no link partner). */
  port?: FramePort;
}

/** A level-triggered line straight to the vCPU (nodes without an 8259). */
class DirectLine implements InterruptController {
  private level = false;
  constructor(
    private readonly line: number,
    private readonly vector: number,
  ) {}
  setIrq(irq: number, level: boolean): void {
    if (irq === this.line) this.level = level;
  }
  intr(): boolean {
    return this.level;
  }
  acknowledge(): number {
    return this.vector;
  }
}

/** GuestMemory as the NIC's DMA sees it: the machine's current RAM, or none. */
function machineRam(machine: Machine): GuestMemory {
  const none = (): never => {
    throw new RangeError('no guest RAM');
  };
  const ram = {
    get size() {
      return machine.mem?.size ?? 0;
    },
    inRange: (a: number, n: number) => machine.mem?.inRange(a, n) ?? false,
    read8: (a: number) => (machine.mem ?? none()).read8(a),
    read16: (a: number) => (machine.mem ?? none()).read16(a),
    read32: (a: number) => (machine.mem ?? none()).read32(a),
    read64: (a: number) => (machine.mem ?? none()).read64(a),
    write8: (a: number, v: number) => (machine.mem ?? none()).write8(a, v),
    write16: (a: number, v: number) => (machine.mem ?? none()).write16(a, v),
    write32: (a: number, v: number) => (machine.mem ?? none()).write32(a, v),
    write64: (a: number, v: bigint) => (machine.mem ?? none()).write64(a, v),
    readBytes: (a: number, n: number) => (machine.mem ?? none()).readBytes(a, n),
    writeBytes: (a: number, d: Uint8Array) => (machine.mem ?? none()).writeBytes(a, d),
    fill: (a: number, n: number, v: number) => (machine.mem ?? none()).fill(a, n, v),
  };
  // The model uses only the accessors above; GuestMemory's private fields make the cast necessary.
  return ram as unknown as GuestMemory;
}

export interface AttachedNic {
  nic: Rtl8169;
  device: SimDevice;
  port: FramePort | null;
}

/** Creates the NIC on `machine`'s bus and connects it to `o.port`; the caller adds `device` to the machine. */
function createNic(machine: Machine, o: NicPortOptions): AttachedNic {
  const name = o.name ?? 'nic0';
  const mmioBase = o.mmioBase ?? DEFAULT_NIC_MMIO;
  const irq = o.irq ?? DEFAULT_NIC_IRQ;
  const port = o.port ?? null;
  if (!machine.intc) machine.intc = new DirectLine(irq, 0x20 + irq);
  const nic = new Rtl8169({
    name,
    mmioBase,
    mem: machineRam(machine),
    clock: machine.clock,
    irq: (level) => {
      // Resolved at each edge: an interrupt controller created after the NIC takes over the line.
      machine.intc?.setIrq(irq, level);
      if (level) machine.kick();
    },
    mac: o.mac ? parseMac(o.mac) : macFromName(machine.name),
    transmit: port ? (frame) => port.send(frame) : () => {},
    autonegNs: (o.autonegMs ?? 1500) * 1e6,
    partner: port ? undefined : (null as LinkPartner | null),
  });
  // The hypervisor's view of the BAR: every access passes the shadow reducer
  // (kept in the object the machine's shadow log holds, under 'rtl8169').
  const shadow: RtlShadow = initialRtlShadow();
  const bar: BusDevice = {
    name,
    mmio: { base: mmioBase, size: RTL_BAR_SIZE },
    mmioRead(offset: number, size: AccessSize) {
      const v = nic.mmioRead(offset, size);
      Object.assign(shadow, reduceRtlShadow(shadow, { kind: 'mmioRead', offset, size, value: v }));
      return v;
    },
    mmioWrite(offset: number, size: AccessSize, value: number) {
      nic.mmioWrite(offset, size, value);
      Object.assign(shadow, reduceRtlShadow(shadow, { kind: 'mmioWrite', offset, size, value }));
    },
  };
  machine.bus.attach(bar);
  const device = Object.assign(
    {
      kind: 'rtl8169',
      name,
      mmioBase,
      timed: nic,
      shadow: { ports: [] as Array<[number, number]>, initial: () => Object.assign(shadow, initialRtlShadow()), reduce: (s: unknown) => s },
    } satisfies SimDevice,
    // The agent's injectFrame finds the NIC by name and calls receiveFrame.
    { receiveFrame: (f: Uint8Array) => nic.receiveFrame(f) },
  );
  registerGuestNet(machine.os);
  port?.onFrame((frame) => {
    nic.receiveFrame(frame);
  });
  return { nic, device, port };
}

/** Adds an RTL8169 to a machine that exists already, plugged into `o.port`. */
export function attachNic(machine: Machine, o: NicPortOptions = {}): AttachedNic {
  const a = createNic(machine, o);
  machine.addDevice(a.device);
  return a;
}

/** A DeviceFactory for 'rtl8169' plugged into `o.port` (what a node's main uses). */
export function nicFactory(o: NicPortOptions = {}): DeviceFactory {
  return { kind: 'rtl8169', create: (machine) => createNic(machine, o).device };
}

export { RTL_SHADOW_KEY };
