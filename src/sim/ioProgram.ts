import type { AccessSize, DeviceAccess, IoOp, IoProgram, IoResult, ShadowLog } from '../devices/io.js';
import { BaremigError } from '../errors.js';
import type { DeviceBus } from './bus.js';
import type { GuestMemory } from './guestMemory.js';

/** What an IoProgram runs against on one node. */
export interface IoTarget {
  bus: DeviceBus;
  mem: GuestMemory;
  /** Let `us` microseconds of node time pass (real sleep on a live node, clock advance in tests). */
  delay(us: number): Promise<void>;
  /** Bring time-driven devices up to the node clock. */
  advance(): void;
  /** Hand a frame to a device as if it came from the wire. */
  injectFrame?(device: string, frame: Uint8Array): void;
  nowUs(): number;
}

const MAX_PROGRAM_OPS = 65536;
const MAX_MEM_READ = 1 << 20;
const MAX_WAIT_US = 5_000_000;

function mask(size: AccessSize): number {
  return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
}

/**
 * Busy-waiting: how a hypervisor's agent waits (udelay, register polls), and
 * what keeps a program's timing exact. A `delay` of up to DELAY_SPIN_MAX_US
 * (the 8254 restore's phase waits, capped at 8 ms) spins on the node
 * clock and ends on time; a timer would wake up late on a busy node (1–15 ms
 * measured), which is both downtime and CLK pulses the counter should not
 * have seen. Longer delays sleep first and spin the last SPIN_MAX_US. A
 * `waitUntil` polls back to back for up to SPIN_MAX_US, then yields between
 * polls (those waits end on a condition, not a time).
 */
const SPIN_MAX_US = 2000;
const DELAY_SPIN_MAX_US = 10_000;
/** Clock reads without progress after which the clock is taken for a manual (test) clock. */
const STILL_CLOCK_READS = 64;

/**
 * Spins until the node clock reaches `until` (µs). Returns false at once if
 * the clock does not move by itself (a manual clock): the caller then lets
 * time pass through `delay`.
 */
function spinUntil(t: IoTarget, until: number): boolean {
  let last = t.nowUs();
  let still = 0;
  while (last < until) {
    const now = t.nowUs();
    if (now === last) {
      if (++still >= STILL_CLOCK_READS) return false;
    } else still = 0;
    last = now;
  }
  return true;
}

/**
 * Runs an IoProgram. Port and MMIO accesses are the hypervisor's own; its
 * shadows of trapped chips see the port accesses too (DeviceBus.agentIn), so
 * they keep describing the chip after a capture or a restore. A failing
 * op aborts the program with a DEVICE error naming the op's index; ops before
 * it have taken effect (as on hardware: there is no undo). Ops run back to
 * back; only a wait or delay longer than SPIN_MAX_US yields the event loop.
 */
export async function runIoProgram(t: IoTarget, program: IoProgram): Promise<IoResult> {
  if (program.length > MAX_PROGRAM_OPS) throw new BaremigError('BAD_REQUEST', `IoProgram of ${program.length} ops exceeds ${MAX_PROGRAM_OPS}`);
  const start = t.nowUs();
  const reads: Array<number | Uint8Array> = [];
  for (let i = 0; i < program.length; i++) {
    const op = program[i]!;
    t.advance();
    if (op.op === 'delay' || op.op === 'waitUntil') await runTimedOp(t, op, i);
    else runOp(t, op, i, reads);
  }
  t.advance();
  return { reads, elapsedUs: t.nowUs() - start };
}

function runOp(t: IoTarget, op: Exclude<IoOp, { op: 'delay' | 'waitUntil' }>, i: number, reads: Array<number | Uint8Array>): void {
  switch (op.op) {
    case 'in':
      reads.push(t.bus.agentIn(op.port, op.size) & mask(op.size));
      return;
    case 'out':
      t.bus.agentOut(op.port, op.size, op.value & mask(op.size));
      return;
    case 'mmioRead':
      reads.push(t.bus.mmioRead(op.addr, op.size) >>> 0);
      return;
    case 'mmioWrite':
      t.bus.mmioWrite(op.addr, op.size, op.value >>> 0);
      return;
    case 'memRead':
      if (op.len > MAX_MEM_READ) throw new BaremigError('BAD_REQUEST', `op ${i}: memRead of ${op.len} bytes exceeds ${MAX_MEM_READ}`);
      if (!t.mem.inRange(op.addr, op.len)) throw new BaremigError('BAD_REQUEST', `op ${i}: memRead 0x${op.addr.toString(16)}+${op.len} outside guest RAM`);
      reads.push(t.mem.readBytes(op.addr, op.len));
      return;
    case 'memWrite':
      if (!t.mem.inRange(op.addr, op.data.length)) throw new BaremigError('BAD_REQUEST', `op ${i}: memWrite 0x${op.addr.toString(16)}+${op.data.length} outside guest RAM`);
      t.mem.writeBytes(op.addr, op.data);
      return;
    case 'injectFrame':
      if (!t.injectFrame) throw new BaremigError('BAD_REQUEST', `op ${i}: this node cannot inject frames`);
      t.injectFrame(op.device, op.frame);
      return;
    default:
      throw new BaremigError('BAD_REQUEST', `op ${i}: unknown IoProgram op ${JSON.stringify((op as { op?: unknown }).op)}`);
  }
}

async function runTimedOp(t: IoTarget, op: Extract<IoOp, { op: 'delay' | 'waitUntil' }>, i: number): Promise<void> {
  if (op.op === 'delay') {
    if (op.us > MAX_WAIT_US) throw new BaremigError('BAD_REQUEST', `op ${i}: delay ${op.us} µs exceeds ${MAX_WAIT_US}`);
    if (!(op.us > 0)) return;
    const until = t.nowUs() + op.us;
    // Sleep what is far away, spin the rest; a clock that does not run by
    // itself (tests) gets the whole delay from t.delay, exactly as asked.
    if (op.us > DELAY_SPIN_MAX_US) await t.delay(op.us - SPIN_MAX_US);
    const left = until - t.nowUs();
    if (left > 0 && !spinUntil(t, until)) await t.delay(until - t.nowUs());
    return;
  }
  if (op.timeoutUs > MAX_WAIT_US) throw new BaremigError('BAD_REQUEST', `op ${i}: waitUntil timeout ${op.timeoutUs} µs exceeds ${MAX_WAIT_US}`);
  const deadline = t.nowUs() + op.timeoutUs;
  let spinUntilUs = t.nowUs() + Math.min(op.timeoutUs, SPIN_MAX_US);
  let lastNow = -1;
  let still = 0;
  for (;;) {
    t.advance();
    const v = op.space === 'io' ? t.bus.agentIn(op.addr, op.size) : t.bus.mmioRead(op.addr, op.size);
    if (((v & op.mask) >>> 0) === (op.expect >>> 0)) return;
    const now = t.nowUs();
    const left = deadline - now;
    if (left <= 0) {
      throw new BaremigError('DEVICE', `op ${i}: waitUntil ${op.space} 0x${op.addr.toString(16)} & 0x${op.mask.toString(16)} == 0x${op.expect.toString(16)} timed out after ${op.timeoutUs} µs (last 0x${(v >>> 0).toString(16)})`);
    }
    // Poll back to back while the clock runs by itself (a device's
    // condition comes with time, which advance() brings in); yield to the
    // event loop only after SPIN_MAX_US, or at once under a manual clock.
    if (now === lastNow) still++;
    else still = 0;
    lastNow = now;
    if (now < spinUntilUs && still === 0) continue;
    await t.delay(Math.min(left, 50));
    spinUntilUs = t.nowUs() + Math.min(deadline - t.nowUs(), SPIN_MAX_US);
  }
}

/**
 * A DeviceAccess over a local bus and memory: what tests use to run a
 * reconstructor against a model directly, and what the sim agent wraps.
 */
export function localAccess(t: IoTarget, shadow: () => ShadowLog): DeviceAccess & { programs: number } {
  const acc = {
    programs: 0,
    async run(program: IoProgram) {
      acc.programs++;
      return runIoProgram(t, program);
    },
    async shadow() {
      return shadow();
    },
  };
  return acc;
}
