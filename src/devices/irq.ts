/** An interrupt request line as a device drives it (level: true = asserted). */
export type IrqLine = (level: boolean) => void;

/** The interrupt controller as devices and the vCPU see it. */
export interface InterruptController {
  /** Drive input line `irq` (0–15 for the cascaded 8259 pair). */
  setIrq(irq: number, level: boolean): void;
  /** INTR output towards the vCPU. */
  intr(): boolean;
  /** Interrupt acknowledge cycle from the vCPU: returns the vector. */
  acknowledge(): number;
}

/**
 * A device that changes with time (8254 counting, PHY autonegotiation, NIC
 * timer). The machine calls advanceTo() with its clock before each guest step
 * and sleeps until the earliest nextEventNs() of its devices — no busy wait.
 */
export interface TimedDevice {
  advanceTo(nowNs: number): void;
  nextEventNs?(): number | undefined;
}
