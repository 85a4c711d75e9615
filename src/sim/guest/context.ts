import type { AccessSize } from '../../devices/io.js';
import type { GuestMemory } from '../guestMemory.js';

/** Port and MMIO access as guest code performs it (passes the hypervisor's traps). */
export interface GuestIo {
  in(port: number, size: AccessSize): number;
  out(port: number, size: AccessSize, value: number): void;
  mmioRead(addr: number, size: AccessSize): number;
  mmioWrite(addr: number, size: AccessSize, value: number): void;
}

/**
 * Everything guest code may touch. DESIGN rule 1: guest code is stateless —
 * every counter, index and buffer lives in `mem` (or vCPU registers), so the
 * same code started over migrated RAM continues exactly where it stopped.
 */
export interface GuestContext {
  mem: GuestMemory;
  io: GuestIo;
  /** Guest time in ns (the vCPU's TSC scaled): keeps running across a migration, pause included. */
  nowNs(): number;
}

/**
 * One piece of the simulated guest OS (heartbeat, memory load, timer tick,
 * NIC driver, network application). A module owns a region of guest RAM
 * starting at `base`; it keeps all its state there.
 */
export interface GuestModule<Config = unknown> {
  readonly name: string;
  /** Bytes of guest RAM the module needs for its state (buffers included). */
  regionBytes(config: Config): number;
  /** First boot on a fresh machine: initialise the region and the devices. */
  boot(ctx: GuestContext, base: number, config: Config): void;
  /**
   * A timeslice. Returns the guest time (ns) at which the module wants to run
   * again; the vCPU halts until the earliest such time or an interrupt.
   */
  step(ctx: GuestContext, base: number): number;
  /**
   * An interrupt vector was delivered (every module sees it and ignores
   * vectors it does not own). Returning true makes the module due at once:
   * what a real kernel does when a handler raises a softirq or queues a task
   * for the work it defers (NAPI poll, re(4)'s interrupt task).
   */
  interrupt?(ctx: GuestContext, base: number, vector: number): boolean | void;
}
