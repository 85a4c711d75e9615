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
 * Runs an IoProgram. Port and MMIO accesses go to the devices raw, i.e. they
 * are the hypervisor's own and do not pass the guest's port traps. A failing
 * op aborts the program with a DEVICE error naming the op's index; ops before
 * it have taken effect (as on hardware: there is no undo).
 */
export async function runIoProgram(t: IoTarget, program: IoProgram): Promise<IoResult> {
  if (program.length > MAX_PROGRAM_OPS) throw new BaremigError('BAD_REQUEST', `IoProgram of ${program.length} ops exceeds ${MAX_PROGRAM_OPS}`);
  const start = t.nowUs();
  const reads: Array<number | Uint8Array> = [];
  for (let i = 0; i < program.length; i++) {
    const op = program[i]!;
    t.advance();
    await runOp(t, op, i, reads);
  }
  t.advance();
  return { reads, elapsedUs: t.nowUs() - start };
}

async function runOp(t: IoTarget, op: IoOp, i: number, reads: Array<number | Uint8Array>): Promise<void> {
  switch (op.op) {
    case 'in':
      reads.push(t.bus.rawIn(op.port, op.size) & mask(op.size));
      return;
    case 'out':
      t.bus.rawOut(op.port, op.size, op.value & mask(op.size));
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
    case 'delay':
      if (op.us > MAX_WAIT_US) throw new BaremigError('BAD_REQUEST', `op ${i}: delay ${op.us} µs exceeds ${MAX_WAIT_US}`);
      await t.delay(op.us);
      return;
    case 'waitUntil': {
      if (op.timeoutUs > MAX_WAIT_US) throw new BaremigError('BAD_REQUEST', `op ${i}: waitUntil timeout ${op.timeoutUs} µs exceeds ${MAX_WAIT_US}`);
      const deadline = t.nowUs() + op.timeoutUs;
      for (;;) {
        t.advance();
        const v = op.space === 'io' ? t.bus.rawIn(op.addr, op.size) : t.bus.mmioRead(op.addr, op.size);
        if (((v & op.mask) >>> 0) === (op.expect >>> 0)) return;
        const left = deadline - t.nowUs();
        if (left <= 0) {
          throw new BaremigError('DEVICE', `op ${i}: waitUntil ${op.space} 0x${op.addr.toString(16)} & 0x${op.mask.toString(16)} == 0x${op.expect.toString(16)} timed out after ${op.timeoutUs} µs (last 0x${(v >>> 0).toString(16)})`);
        }
        await t.delay(Math.min(left, 50));
      }
    }
    case 'injectFrame':
      if (!t.injectFrame) throw new BaremigError('BAD_REQUEST', `op ${i}: this node cannot inject frames`);
      t.injectFrame(op.device, op.frame);
      return;
    default:
      throw new BaremigError('BAD_REQUEST', `op ${i}: unknown IoProgram op ${JSON.stringify((op as { op?: unknown }).op)}`);
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
