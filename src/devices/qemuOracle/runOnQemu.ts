/**
 * Runs a sequence of byte port accesses on a fresh, stopped QEMU `pc` machine
 * and returns what the reads gave and QEMU's saved 8254/8259 state.
 *
 * One QEMU process per sequence: it is the only way to start every sequence
 * from the exact power-on state (system_reset keeps the PIT's latches and
 * flip-flops, and rw_mode 0 cannot be written back), and QEMU refuses a
 * second migration from the same process anyway. Start-up is hidden by a
 * pool that keeps spare processes started ahead (they idle at no CPU cost).
 */
import { BaremigError } from '../../errors.js';
import { QemuMachine, type QemuMachineOptions } from './qemuMachine.js';
import type { QemuPicChipState, QemuPitState } from './qemuState.js';

export type QemuPortOp = { dir: 'out'; port: number; value: number } | { dir: 'in'; port: number };

export interface QemuRunResult {
  /** One entry per `in` op, in order. */
  reads: number[];
  pit: QemuPitState;
  pic: { master: QemuPicChipState; slave: QemuPicChipState };
}

export interface QemuPoolOptions extends QemuMachineOptions {
  /** Spare machines kept started ahead; default 1 (the machines have 2 cores). */
  spares?: number;
}

type Spare = Promise<{ ok: true; machine: QemuMachine } | { ok: false; error: unknown }>;

export class QemuPool {
  private readonly spares: Spare[] = [];
  private readonly busy = new Set<QemuMachine>();
  private readonly quitting = new Set<Promise<void>>();
  private closed = false;
  private readonly spareCount: number;

  constructor(private readonly options: QemuPoolOptions = {}) {
    this.spareCount = Math.max(0, Math.floor(options.spares ?? 1));
  }

  private startSpare(): void {
    const p: Spare = QemuMachine.start(this.options).then(
      (machine) => {
        // An idle spare must not keep a finished test run or script alive.
        machine.setRef(false);
        return { ok: true as const, machine };
      },
      (error: unknown) => ({ ok: false as const, error }),
    );
    this.spares.push(p);
  }

  private fill(): void {
    while (!this.closed && this.spares.length < this.spareCount) this.startSpare();
  }

  private async acquire(): Promise<QemuMachine> {
    if (this.closed) throw new BaremigError('STATE', 'QemuPool is closed');
    const spare = this.spares.shift();
    this.fill();
    if (spare) {
      const r = await spare;
      if (r.ok && r.machine.alive) {
        r.machine.setRef(true);
        return r.machine;
      }
      if (r.ok) void r.machine.quit();
      // A spare that failed to start: try once more directly, which reports the real error.
    }
    return QemuMachine.start(this.options);
  }

  private release(m: QemuMachine): void {
    this.busy.delete(m);
    const q = m.quit().finally(() => this.quitting.delete(q));
    this.quitting.add(q);
  }

  /** Runs `ops` on a fresh machine, saves its device state, and ends the machine. */
  async run(ops: readonly QemuPortOp[]): Promise<QemuRunResult> {
    for (const [i, op] of ops.entries()) validateOp(op, i);
    const m = await this.acquire();
    this.busy.add(m);
    try {
      // Pipelined: QMP executes commands strictly in order, so all of them are
      // sent at once and their replies awaited together.
      const pending: Array<Promise<number | void>> = ops.map((op) => (op.dir === 'out' ? m.outb(op.port, op.value) : m.inb(op.port)));
      const settled = await Promise.allSettled(pending);
      const failed = settled.findIndex((s) => s.status === 'rejected');
      if (failed >= 0) {
        const reason = (settled[failed] as PromiseRejectedResult).reason as Error;
        throw new BaremigError('DEVICE', `op ${failed} ${JSON.stringify(ops[failed])}: ${reason.message}`);
      }
      const reads: number[] = [];
      settled.forEach((s, i) => {
        if (ops[i]!.dir === 'in') reads.push((s as PromiseFulfilledResult<number>).value);
      });
      const state = await m.saveDeviceState();
      return { reads, pit: state.pit, pic: state.pic };
    } finally {
      this.release(m);
    }
  }

  /** Ends every spare and running machine and waits for them to exit. */
  async close(): Promise<void> {
    this.closed = true;
    const spares = this.spares.splice(0);
    const ends: Array<Promise<void>> = [...this.quitting];
    for (const m of this.busy) ends.push(m.quit());
    for (const s of spares) {
      ends.push(
        s.then((r) => {
          if (r.ok) return r.machine.quit();
        }),
      );
    }
    await Promise.all(ends);
  }
}

function validateOp(op: QemuPortOp, i: number): void {
  const bad = (why: string): never => {
    throw new BaremigError('USAGE', `op ${i} ${JSON.stringify(op)}: ${why}`);
  };
  if (op.dir !== 'out' && op.dir !== 'in') bad('dir must be "out" or "in"');
  if (!Number.isInteger(op.port) || op.port < 0 || op.port > 0xffff) bad('port must be an integer in 0..0xffff');
  if (op.dir === 'out' && (!Number.isInteger(op.value) || op.value < 0 || op.value > 0xff)) bad('value must be a byte');
}

let defaultPool: QemuPool | null = null;

/**
 * Runs `ops` on a fresh QEMU from a shared pool. Call `closeQemuOracle()`
 * when done (e.g. in afterAll); a process exit also ends every QEMU.
 */
export function runOnQemu(ops: ReadonlyArray<QemuPortOp>): Promise<QemuRunResult> {
  defaultPool ??= new QemuPool();
  return defaultPool.run(ops);
}

/** Ends the shared pool's machines. runOnQemu may be called again afterwards. */
export async function closeQemuOracle(): Promise<void> {
  const p = defaultPool;
  defaultPool = null;
  if (p) await p.close();
}
