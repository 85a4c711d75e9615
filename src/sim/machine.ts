import type { AccessSize } from '../devices/io.js';
import type { InterruptController, TimedDevice } from '../devices/irq.js';
import { DeviceBus, type PortAccess } from './bus.js';
import { MachineClock } from './clock.js';
import type { GuestContext, GuestIo } from './guest/context.js';
import { GuestOs, type GuestSpec } from './guest/os.js';
import { GuestMemory } from './guestMemory.js';
import { simAccel } from './native.js';
import { type VcpuState, RFLAGS_IF, cloneVcpu, resetVcpu } from './vcpu.js';

export type GuestRunState = 'none' | 'running' | 'paused' | 'incoming' | 'released';

/** A device as the node has it: on the bus, maybe timed, maybe shadowed by the hypervisor. */
export interface SimDevice {
  kind: string;
  name: string;
  mmioBase?: number;
  timed?: TimedDevice;
  /** Hypervisor port traps and the shadow they feed (8254/8259). */
  shadow?: {
    ports: Array<[number, number]>;
    initial(): unknown;
    reduce(shadow: unknown, access: PortAccess | ShadowEvent): unknown;
  };
  /** Hardware reset (a node about to receive a guest resets its devices). */
  reset?(): void;
  /** Frames from the wire, for NICs (the agent's injectFrame). */
  receiveFrame?(frame: Uint8Array): void;
}

/** Non-port events the hypervisor observes and feeds to a shadow: the vCPU's interrupt acknowledge. */
export interface ShadowEvent {
  dir: 'inta';
  master: number;
  slave?: number;
}

/** An interrupt controller that reports which chips took part in an acknowledge (the 8259 pair). */
interface AckReporting extends InterruptController {
  acknowledgeCycle(): { vector: number; master: number; slave?: number };
}

export interface DeviceFactory {
  kind: string;
  /** Creates the device on `machine` (attaching it to the bus). */
  create(machine: Machine): SimDevice;
}

/** Wall-clock ms (µs resolution) shared by the nodes of a cluster (PTP-synchronised on real hardware). */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * A simulated bare-metal node: RAM, one vCPU, a device bus, and the guest's
 * run loop. The run loop is event driven: after each step it sleeps until the
 * next module wake-up or device event (the guest "halts"), so an idle guest
 * costs no CPU.
 */
export class Machine {
  readonly clock = new MachineClock();
  /** Guest time of the earliest module wake-up, from the last step. */
  private guestWakeNs = 0;
  readonly bus = new DeviceBus();
  readonly os = new GuestOs();
  readonly devices: SimDevice[] = [];
  mem: GuestMemory | null = null;
  vcpu: VcpuState = resetVcpu();
  state: GuestRunState = 'none';
  intc: InterruptController | null = null;
  /** guest ns = host clock ns + tscOffsetNs */
  private tscOffsetNs = 0;
  /** Wall time at which the paused guest's clock (vcpu.tsc) stopped being read. */
  private pausedWallMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private readonly shadows = new Map<string, unknown>();
  /** Device kind whose shadow sees interrupt acknowledges ('pic'). */
  intcShadowKind: string | null = null;
  /**
   * Another hypervisor part that watches interrupt acknowledges (the native
   * agent's 8259 shadow, hypervisor/hosted/napi_hal.c), as bus traps watch ports.
   */
  onInterruptAcknowledge: ((ev: ShadowEvent) => void) | null = null;
  private ctx: GuestContext | null = null;
  /**
   * The node's physical RAM: allocated and backed once, when the node starts,
   * as a bare-metal node's memory exists from power-on. Guests use it from
   * address 0; a released guest's RAM is scrubbed (zeroed) before the next
   * guest gets it — in the background, so that releasing costs no pause.
   */
  private readonly physical: Buffer;
  private scrubNext = 0;
  private scrubEnd = 0;
  private scrubTimer: NodeJS.Immediate | null = null;
  /** Called when a guest step throws: the guest has crashed. */
  onCrash: (err: unknown) => void = () => {};

  constructor(
    readonly name: string,
    readonly ramCapacity: number,
    factories: DeviceFactory[] = [],
  ) {
    this.physical = Buffer.alloc(ramCapacity);
    simAccel().populate(this.physical);
    for (const f of factories) this.addDevice(f.create(this));
  }

  /** Zeroes what the last guest used, 64 MiB per turn of the event loop. */
  private scrubStep(): void {
    this.scrubTimer = null;
    const end = Math.min(this.scrubEnd, this.scrubNext + 64 * 1024 * 1024);
    this.physical.fill(0, this.scrubNext, end);
    this.scrubNext = end;
    if (this.scrubNext < this.scrubEnd) this.scrubTimer = setImmediate(() => this.scrubStep());
  }

  private finishScrub(): void {
    if (this.scrubTimer) clearImmediate(this.scrubTimer);
    this.scrubTimer = null;
    if (this.scrubNext < this.scrubEnd) this.physical.fill(0, this.scrubNext, this.scrubEnd);
    this.scrubNext = this.scrubEnd = 0;
  }

  addDevice(d: SimDevice): void {
    this.devices.push(d);
    if (d.shadow) {
      const sh = d.shadow;
      this.shadows.set(d.kind, sh.initial());
      for (const [a, b] of sh.ports) {
        this.bus.trap(a, b, (acc) => this.shadows.set(d.kind, sh.reduce(this.shadows.get(d.kind), acc)));
      }
    }
  }

  /** Interrupt acknowledge by the vCPU; the hypervisor sees it and tells the controller's shadow. */
  private acknowledgeInterrupt(): number {
    const intc = this.intc!;
    if (!('acknowledgeCycle' in intc)) return intc.acknowledge();
    const ack = (intc as AckReporting).acknowledgeCycle();
    const kind = this.intcShadowKind;
    const dev = kind ? this.devices.find((d) => d.kind === kind) : undefined;
    if (dev?.shadow) {
      const ev: ShadowEvent = ack.slave === undefined ? { dir: 'inta', master: ack.master } : { dir: 'inta', master: ack.master, slave: ack.slave };
      this.shadows.set(dev.kind, dev.shadow.reduce(this.shadows.get(dev.kind), ev));
      this.onInterruptAcknowledge?.(ev);
    }
    return ack.vector;
  }

  /** Hardware reset of every device, and the shadows with them (known state before a guest arrives). */
  resetDevices(): void {
    for (const d of this.devices) {
      d.reset?.();
      if (d.shadow) this.shadows.set(d.kind, d.shadow.initial());
    }
  }

  /** The hypervisor's shadow of intercepted device writes, per device kind. */
  shadowLog(): Record<string, unknown> {
    return Object.fromEntries(this.shadows);
  }

  guestNowNs(): number {
    return this.clock.nowNs() + this.tscOffsetNs;
  }

  context(): GuestContext {
    if (!this.mem) throw new Error('no guest RAM');
    if (this.ctx && this.ctx.mem === this.mem) return this.ctx;
    const bus = this.bus;
    const io: GuestIo = {
      in: (port: number, size: AccessSize) => bus.in(port, size),
      out: (port: number, size: AccessSize, value: number) => bus.out(port, size, value),
      mmioRead: (addr: number, size: AccessSize) => bus.mmioRead(addr, size),
      mmioWrite: (addr: number, size: AccessSize, value: number) => bus.mmioWrite(addr, size, value),
    };
    this.ctx = { mem: this.mem, io, nowNs: () => this.guestNowNs() };
    return this.ctx;
  }

  /** Boots a fresh guest (simulator only: a real node boots its own OS). */
  boot(ramBytes: number, spec: GuestSpec): void {
    if (this.state !== 'none' && this.state !== 'released') throw new Error(`cannot boot: guest is ${this.state}`);
    this.allocate(ramBytes);
    this.resetDevices();
    this.vcpu = resetVcpu();
    this.vcpu.rflags |= RFLAGS_IF;
    this.tscOffsetNs = -this.clock.nowNs();
    this.os.boot(this.context(), spec);
    this.guestWakeNs = this.guestNowNs();
    this.state = 'running';
    this.schedule(0);
  }

  /** Fresh RAM for an incoming guest (destination of a migration). */
  prepareIncoming(ramBytes: number): void {
    if (this.state !== 'none' && this.state !== 'released') throw new Error(`cannot receive a guest: guest is ${this.state}`);
    this.allocate(ramBytes);
    this.vcpu = resetVcpu();
    this.resetDevices();
    this.state = 'incoming';
  }

  private allocate(ramBytes: number): void {
    if (ramBytes > this.ramCapacity) throw new RangeError(`guest needs ${ramBytes} bytes of RAM, node ${this.name} has ${this.ramCapacity}`);
    this.mem = null;
    this.ctx = null;
    this.finishScrub();
    this.mem = new GuestMemory(ramBytes, this.physical);
  }

  pause(): void {
    if (this.state !== 'running') throw new Error(`cannot pause: guest is ${this.state}`);
    this.stopLoop();
    this.vcpu.tsc = BigInt(Math.floor(this.guestNowNs()));
    this.pausedWallMs = wallMs();
    this.state = 'paused';
  }

  /** Resume a paused guest (source rollback) or start an incoming one (destination). */
  resume(): void {
    if (this.state !== 'paused' && this.state !== 'incoming') throw new Error(`cannot resume: guest is ${this.state}`);
    if (this.state === 'incoming' && !GuestOs.isBooted(this.context())) throw new Error('incoming guest RAM holds no bootable guest');
    // While the vCPU was paused the devices ran on, but nothing could take their
    // interrupts: bring them to now in one step (requests merge, as on hardware)
    // instead of replaying the pause as a burst.
    const now = this.clock.hostNowNs();
    for (const d of this.devices) d.timed?.advanceTo(now);
    this.guestWakeNs = this.guestNowNs();
    this.state = 'running';
    this.schedule(0);
  }

  /** An incoming guest that was stopped on its source arrives stopped: paused, ready to resume. */
  acceptPaused(): void {
    if (this.state !== 'incoming') throw new Error(`cannot accept a paused guest: guest is ${this.state}`);
    if (!GuestOs.isBooted(this.context())) throw new Error('incoming guest RAM holds no bootable guest');
    this.vcpu.tsc = BigInt(Math.floor(this.guestNowNs()));
    this.pausedWallMs = wallMs();
    this.state = 'paused';
  }

  /**
   * vCPU state and the wall time its `tsc` belongs to: on a paused guest the
   * guest clock at pause and the moment of the pause.
   */
  getVcpu(): { vcpu: VcpuState; tscWallMs: number } {
    const s = cloneVcpu(this.vcpu);
    if (this.state !== 'running') return { vcpu: s, tscWallMs: this.pausedWallMs };
    const w = wallMs();
    s.tsc = BigInt(Math.floor(this.guestNowNs()));
    return { vcpu: s, tscWallMs: w };
  }

  /**
   * Loads a vCPU state. `tscWallMs` is the wall time at which `s.tsc` was
   * read: the guest clock keeps running from there, as the physical TSC does
   * while a guest is paused, so the guest sees the pause as elapsed time.
   */
  setVcpu(s: VcpuState, tscWallMs: number): void {
    if (this.state !== 'incoming') throw new Error(`cannot load vCPU state: guest is ${this.state}`);
    this.vcpu = cloneVcpu(s);
    const guestNow = Number(s.tsc) + (wallMs() - tscWallMs) * 1e6;
    this.tscOffsetNs = guestNow - this.clock.nowNs();
  }

  /** Discard the guest: after a committed migration (source) or an abandoned one (destination). */
  release(): void {
    this.stopLoop();
    if (this.mem) {
      // The next guest must find zeroed RAM, and nothing of this one.
      this.finishScrub();
      this.scrubNext = 0;
      this.scrubEnd = this.mem.size;
      this.scrubTimer = setImmediate(() => this.scrubStep());
    }
    this.mem = null;
    this.ctx = null;
    this.state = this.state === 'none' ? 'none' : 'released';
  }

  private stopLoop(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
  }

  private schedule(delayNs: number): void {
    this.stopLoop();
    if (delayNs <= 0) this.immediate = setImmediate(() => this.run());
    else this.timer = setTimeout(() => this.run(), Math.max(1, Math.floor(delayNs / 1e6)));
  }

  /** Wake the guest now (an interrupt was raised). */
  kick(): void {
    if (this.state === 'running' && this.timer) this.schedule(0);
  }

  /** The earliest device event or module wake-up, host ns. */
  private nextEventNs(): number {
    let next = this.guestWakeNs - this.tscOffsetNs;
    for (const d of this.devices) {
      const t = d.timed?.nextEventNs?.();
      if (t !== undefined && t < next) next = t;
    }
    return next;
  }

  /** Devices to `ns`, pending interrupts delivered, modules that are due run. */
  private processAt(ns: number): void {
    for (const d of this.devices) d.timed?.advanceTo(ns);
    const ctx = this.context();
    if (this.intc) {
      for (let n = 0; n < 16 && (this.vcpu.rflags & RFLAGS_IF) !== 0n && this.intc.intr(); n++) {
        this.os.interrupt(ctx, this.acknowledgeInterrupt());
      }
    }
    this.guestWakeNs = this.os.step(ctx);
  }

  /**
   * One wake-up of the vCPU. The host thread wakes when it can (timers have
   * ~1 ms granularity); events that fell due while it slept are replayed in
   * order, each at its own time (the clock is pinned to it), so that a
   * 1000 Hz tick reaches the guest as 1000 interrupts a second rather than
   * being merged by a late wake-up. Then it sleeps until the next event.
   */
  private run(): void {
    this.timer = null;
    this.immediate = null;
    if (this.state !== 'running') return;
    try {
      const host = this.clock.hostNowNs();
      for (let n = 0; n < MAX_CATCH_UP_EVENTS && this.state === 'running'; n++) {
        const t = this.nextEventNs();
        if (!(t <= host)) break;
        this.clock.pin(t);
        this.processAt(t);
      }
      this.clock.pin(host);
      if (this.state === 'running') this.processAt(host);
      this.clock.unpin();
      if (this.state === 'running') this.schedule(Math.min(this.nextEventNs() - this.clock.hostNowNs(), 1e9));
    } catch (e) {
      this.clock.unpin();
      this.stopLoop();
      this.state = 'paused';
      this.onCrash(e);
    }
  }
}

/** Events replayed per wake-up at most; beyond (a host stall), the rest are merged as hardware would. */
const MAX_CATCH_UP_EVENTS = 5000;
