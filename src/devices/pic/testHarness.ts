/**
 * A node reduced to what the 8259 tests need: a device bus with the pair
 * attached, the hypervisor's port traps feeding the shadow reducer, the
 * vCPU's acknowledges fed to it as well, and a DeviceAccess over
 * runIoProgram. Guest accesses go through the bus (and its traps); the
 * agent's programs go raw, as on a real node.
 */
import fc from 'fast-check';
import type { AccessSize, DeviceAccess } from '../io.js';
import { DeviceBus } from '../../sim/bus.js';
import { GuestMemory } from '../../sim/guestMemory.js';
import { localAccess, type IoTarget } from '../../sim/ioProgram.js';
import { PicPair, type PicAcknowledge } from './model.js';
import { PIC_MASTER_CMD, PIC_MASTER_DATA, PIC_SLAVE_CMD, PIC_SLAVE_DATA } from './registers.js';
import { PIC_SHADOW_KEY, initialPicShadow, reducePicShadow, type PicShadow } from './shadow.js';

let sharedMemory: GuestMemory | undefined;
/** The PIC touches no RAM; one minimal guest memory serves every node. */
function memory(): GuestMemory {
  sharedMemory ??= new GuestMemory(1 << 20);
  return sharedMemory;
}

export class PicNode {
  readonly bus = new DeviceBus();
  readonly pic = new PicPair();
  shadow: PicShadow = initialPicShadow();
  /** IR input levels the harness's "devices" drive (bit n = IRQn). */
  lines = 0;
  readonly access: DeviceAccess & { programs: number };

  constructor() {
    this.bus.attach(this.pic);
    const trap = (a: Parameters<typeof reducePicShadow>[1]): void => {
      this.shadow = reducePicShadow(this.shadow, a);
    };
    this.bus.trap(PIC_MASTER_CMD, PIC_MASTER_DATA, trap);
    this.bus.trap(PIC_SLAVE_CMD, PIC_SLAVE_DATA, trap);
    const target: IoTarget = {
      bus: this.bus,
      mem: memory(),
      delay: async () => {},
      advance: () => {},
      nowUs: () => 0,
    };
    this.access = localAccess(target, () => ({ [PIC_SHADOW_KEY]: this.shadow }));
  }

  out(port: number, value: number, size: AccessSize = 1): void {
    this.bus.out(port, size, value);
  }

  in(port: number, size: AccessSize = 1): number {
    return this.bus.in(port, size);
  }

  setIrq(irq: number, level: boolean): void {
    this.lines = level ? this.lines | (1 << irq) : this.lines & ~(1 << irq);
    this.pic.setIrq(irq, level);
  }

  /** The vCPU takes an interrupt; the hypervisor sees the acknowledge. */
  inta(midCycle?: () => void): PicAcknowledge {
    const ack = this.pic.acknowledgeCycle(midCycle);
    this.shadow = reducePicShadow(this.shadow, { dir: 'inta', master: ack.master, ...(ack.slave === undefined ? {} : { slave: ack.slave }) });
    return ack;
  }

  /** A destination whose devices are restored: same line levels, PIC freshly reset. */
  static withLines(lines: number): PicNode {
    const n = new PicNode();
    for (let irq = 0; irq < 16; irq++) if (irq !== 2 && lines & (1 << irq)) n.setIrq(irq, true);
    return n;
  }

  /** Standard PC initialisation (what Linux and the BIOS write), vectors base 0x20/0x28. */
  initPc(opts: { icw4?: number; masterBase?: number; slaveBase?: number; ltim?: boolean } = {}): void {
    const icw1 = 0x11 | (opts.ltim ? 0x08 : 0);
    const icw4 = opts.icw4 ?? 0x01;
    this.out(PIC_MASTER_CMD, icw1);
    this.out(PIC_MASTER_DATA, opts.masterBase ?? 0x20);
    this.out(PIC_MASTER_DATA, 0x04);
    this.out(PIC_MASTER_DATA, icw4);
    this.out(PIC_SLAVE_CMD, icw1);
    this.out(PIC_SLAVE_DATA, opts.slaveBase ?? 0x28);
    this.out(PIC_SLAVE_DATA, 0x02);
    this.out(PIC_SLAVE_DATA, icw4 & ~0x10);
  }
}

// ------------------------------------------------------------------ random guest activity
// Shared by the shadow and reconstructor properties: port operations an OS
// might issue (or get wrong), device lines moving, the vCPU acknowledging.

export type Chip = 'master' | 'slave';
export type GuestOp =
  | { k: 'cmd'; chip: Chip; v: number }
  | { k: 'data'; chip: Chip; v: number }
  | { k: 'read'; chip: Chip; data: boolean }
  | { k: 'elcr'; chip: Chip; v: number }
  | { k: 'line'; irq: number; level: boolean }
  | { k: 'inta' }
  | { k: 'intaDrop'; irq: number }
  | { k: 'init'; icw4: number; ltim: boolean };

const chipArb = fc.constantFrom<Chip>('master', 'slave');
const level3 = fc.integer({ min: 0, max: 7 });
const cmdByte = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 0xff }).map((v) => v | 0x10), weight: 2 }, // ICW1, any mode bits
  { arbitrary: fc.constantFrom(0x00, 0x20, 0x40, 0x80, 0xa0), weight: 4 }, // OCW2 without level
  { arbitrary: fc.tuple(fc.constantFrom(0x60, 0xc0, 0xe0), level3).map(([c, l]) => c | l), weight: 4 },
  { arbitrary: fc.constantFrom(0x0a, 0x0b, 0x0c, 0x48, 0x68), weight: 4 }, // OCW3 forms guests use
  { arbitrary: fc.integer({ min: 0, max: 0xff }).map((v) => (v & 0xe7) | 0x08), weight: 1 }, // any OCW3
);
const dataByte = fc.oneof(fc.integer({ min: 0, max: 0xff }), fc.constantFrom(0x00, 0xff, 0x01, 0x03, 0x11, 0x13, 0x02, 0x04, 0x20, 0x28, 0xfb));
const irqArb = fc.constantFrom(0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
const opArb: fc.Arbitrary<GuestOp> = fc.oneof(
  { arbitrary: fc.record({ k: fc.constant('cmd' as const), chip: chipArb, v: cmdByte }), weight: 6 },
  { arbitrary: fc.record({ k: fc.constant('data' as const), chip: chipArb, v: dataByte }), weight: 3 },
  { arbitrary: fc.record({ k: fc.constant('read' as const), chip: chipArb, data: fc.boolean() }), weight: 2 },
  { arbitrary: fc.record({ k: fc.constant('elcr' as const), chip: chipArb, v: fc.integer({ min: 0, max: 0xff }) }), weight: 1 },
  { arbitrary: fc.record({ k: fc.constant('line' as const), irq: irqArb, level: fc.boolean() }), weight: 8 },
  { arbitrary: fc.constant({ k: 'inta' as const }), weight: 5 },
  { arbitrary: fc.record({ k: fc.constant('intaDrop' as const), irq: irqArb }), weight: 1 },
);
const initArb = fc.record({ k: fc.constant('init' as const), icw4: fc.constantFrom(0x01, 0x03, 0x11, 0x13, 0x01, 0x01), ltim: fc.boolean() });
/** Usually a PC-style init first, as every OS does, then random activity (which may re-initialise, half-way too). */
export const guestScriptArb: fc.Arbitrary<GuestOp[]> = fc.tuple(fc.option(initArb, { freq: 4, nil: undefined }), fc.array(opArb, { maxLength: 60, size: 'large' })).map(([init, ops]) => (init ? [init, ...ops] : ops));

const CMD = { master: 0x20, slave: 0xa0 } as const;
const DATA = { master: 0x21, slave: 0xa1 } as const;
const ELCR = { master: 0x4d0, slave: 0x4d1 } as const;

export function applyGuestOp(n: PicNode, op: GuestOp): void {
  switch (op.k) {
    case 'cmd':
      return n.out(CMD[op.chip], op.v);
    case 'data':
      return n.out(DATA[op.chip], op.v);
    case 'read':
      n.in(op.data ? DATA[op.chip] : CMD[op.chip]);
      return;
    case 'elcr':
      return n.out(ELCR[op.chip], op.v);
    case 'line':
      return n.setIrq(op.irq, op.level);
    case 'inta':
      n.inta();
      return;
    case 'intaDrop':
      // The request goes away inside the INTA cycle (spurious IRQ15 path).
      n.inta(() => n.setIrq(op.irq, false));
      return;
    case 'init':
      return n.initPc({ icw4: op.icw4, ltim: op.ltim });
  }
}

export function runGuestScript(ops: GuestOp[]): PicNode {
  const n = new PicNode();
  for (const op of ops) applyGuestOp(n, op);
  return n;
}

