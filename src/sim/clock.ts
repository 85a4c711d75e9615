/**
 * A node's notion of time, in nanoseconds. Device models (8254 counting,
 * PHY autonegotiation, NIC timers) read it; the simulator uses the host's
 * monotonic clock, tests use a ManualClock they advance themselves.
 */
export interface Clock {
  nowNs(): number;
}

export class HostClock implements Clock {
  private readonly origin = process.hrtime.bigint();
  nowNs(): number {
    return Number(process.hrtime.bigint() - this.origin);
  }
}

export class ManualClock implements Clock {
  constructor(private ns = 0) {}
  nowNs(): number {
    return this.ns;
  }
  advance(ns: number): void {
    if (!(ns >= 0)) throw new RangeError(`ManualClock cannot go backwards (${ns} ns)`);
    this.ns += ns;
  }
  set(ns: number): void {
    if (ns < this.ns) throw new RangeError('ManualClock cannot go backwards');
    this.ns = ns;
  }
}
