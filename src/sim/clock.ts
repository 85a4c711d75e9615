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

/**
 * A node's clock while its vCPU catches up on events it slept through: the
 * host's monotonic time, or — while the run loop replays an event — the
 * moment that event happened, so devices and the guest see each event at its
 * own time even when the host thread woke late.
 */
export class MachineClock implements Clock {
  private readonly host = new HostClock();
  private pinned: number | null = null;
  hostNowNs(): number {
    return this.host.nowNs();
  }
  nowNs(): number {
    return this.pinned ?? this.host.nowNs();
  }
  pin(ns: number): void {
    this.pinned = ns;
  }
  unpin(): void {
    this.pinned = null;
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
