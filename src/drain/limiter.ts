/**
 * The per-link part of the concurrency budget: each migration link takes
 * part in at most `perLink` migrations at once; a migration needs a slot on
 * every link it uses (both ends). Excess waits in arrival order, it is not
 * rejected. (The per-drain part is a p-queue in the runner.)
 */
export class LinkBudget {
  private readonly used = new Map<string, number>();
  private readonly waiting: Array<{ keys: string[]; grant: () => void }> = [];
  /** Most migrations any one link has had at once (for reports and tests). */
  peak = 0;

  constructor(readonly perLink: number) {
    if (!(perLink >= 1)) throw new RangeError('perLink must be ≥ 1');
  }

  private fits(keys: string[]): boolean {
    return keys.every((k) => (this.used.get(k) ?? 0) < this.perLink);
  }

  private take(keys: string[]): void {
    for (const k of keys) {
      const n = (this.used.get(k) ?? 0) + 1;
      this.used.set(k, n);
      this.peak = Math.max(this.peak, n);
    }
  }

  inUse(key: string): number {
    return this.used.get(key) ?? 0;
  }

  /** Resolves with a release function once every link in `keys` has a free slot. */
  acquire(keys: string[]): Promise<() => void> {
    const ks = [...new Set(keys)];
    return new Promise((resolve) => {
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        for (const k of ks) this.used.set(k, (this.used.get(k) ?? 1) - 1);
        this.pump();
      };
      const grant = () => {
        this.take(ks);
        resolve(release);
      };
      // Arrival order per link: never ahead of an earlier waiter for the same link.
      if (this.fits(ks) && !this.waiting.some((w) => w.keys.some((k) => ks.includes(k)))) grant();
      else this.waiting.push({ keys: ks, grant });
    });
  }

  private pump(): void {
    // In order; a waiter whose links are busy holds up later waiters for those links only.
    const held = new Set<string>();
    for (let i = 0; i < this.waiting.length; ) {
      const w = this.waiting[i]!;
      if (this.fits(w.keys) && !w.keys.some((k) => held.has(k))) {
        this.waiting.splice(i, 1);
        w.grant();
      } else {
        for (const k of w.keys) held.add(k);
        i++;
      }
    }
  }
}
