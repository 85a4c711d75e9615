/**
 * A token bucket for the agent-to-agent page stream: `rate` bytes per second
 * with a burst of `burst` bytes. take() resolves when the bytes may be sent;
 * waiting is a timer, never a spin.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly rate: number,
    readonly burst: number = Math.max(64 * 1024, rate / 100),
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(rate > 0)) throw new RangeError(`bandwidth must be positive, got ${rate}`);
    this.tokens = this.burst;
    this.last = this.now();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.rate) / 1000);
    this.last = t;
  }

  /** Milliseconds until `n` bytes may go (0 if now); takes them when it returns 0. */
  tryTake(n: number): number {
    this.refill();
    if (this.tokens >= Math.min(n, this.burst)) {
      this.tokens -= n; // may go negative for a request larger than the burst: later calls wait it off
      return 0;
    }
    return ((Math.min(n, this.burst) - this.tokens) * 1000) / this.rate;
  }

  async take(n: number): Promise<void> {
    for (;;) {
      const wait = this.tryTake(n);
      if (wait === 0) return;
      await new Promise((r) => setTimeout(r, Math.max(1, Math.ceil(wait))));
    }
  }
}
