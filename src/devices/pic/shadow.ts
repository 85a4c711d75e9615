/**
 * The hypervisor's shadow of the 8259 pair: a pure reducer over the guest's
 * intercepted accesses to ports 0x20/0x21 and 0xA0/0xA1, plus the interrupt
 * acknowledges the hypervisor observes.
 *
 * What it keeps, per chip, and why (everything else is read from the chip at
 * capture time):
 *  - the ICW sequence since the last ICW1 (ICW1 and up to three data bytes):
 *    irq_base, LTIM, SNGL, IC4, AEOI, SFNM and how far a half-done sequence
 *    got cannot be read back;
 *  - the OCW3 state: read_reg_select, special mask mode, an armed poll;
 *  - rotate_on_auto_eoi (OCW2 0x80/0x00);
 *  - priority_add (rotation).
 *
 * Can the rotation be derived from the trapped port writes alone? Partly.
 * ICW1 (back to 0), "set priority" (0xC0|L) and "rotate on specific EOI"
 * (0xE0|L) carry their result in the byte. "Rotate on non-specific EOI"
 * (0xA0) makes the highest-priority level *in service* the lowest, so the
 * shadow must know the ISR at that moment; and "rotate in automatic EOI
 * mode" rotates on every acknowledge, which no port write shows. So the
 * shadow also follows the ISR and the IMR (special mask mode decides which IS
 * bits a non-specific EOI may clear), and it needs every interrupt
 * acknowledge as an input: `{dir:'inta', master, slave}` below. ISR and IMR
 * are re-synchronised whenever the guest reads them.
 *
 * Poll reads need nothing extra: the guest's read after OCW3 0x0C is a
 * trapped `in` whose value is the poll word.
 */
import type { PortAccess } from '../../sim/bus.js';
import {
  ICW1_IC4,
  ICW1_LTIM,
  ICW1_SNGL,
  ICW2_VECTOR_MASK,
  ICW4_AEOI,
  ICW4_SFNM,
  ICW1_INIT,
  OCW2_COMMAND_MASK,
  OCW2_LEVEL_MASK,
  OCW2_NONSPECIFIC_EOI,
  OCW2_ROTATE_AEOI_CLEAR,
  OCW2_ROTATE_AEOI_SET,
  OCW2_ROTATE_NONSPECIFIC_EOI,
  OCW2_ROTATE_SPECIFIC_EOI,
  OCW2_SET_PRIORITY,
  OCW2_SPECIFIC_EOI,
  OCW3_ESMM,
  OCW3_POLL,
  OCW3_RIS,
  OCW3_RR,
  OCW3_SMM,
  PIC_MASTER_CMD,
  PIC_MASTER_DATA,
  PIC_SLAVE_CMD,
  PIC_SLAVE_DATA,
  POLL_INT,
  POLL_LEVEL_MASK,
  bestPriority,
  isIcw1,
  isOcw3,
  levelOfPriority,
} from './registers.js';

/** Key of the PIC shadow in a ShadowLog. */
export const PIC_SHADOW_KEY = 'pic';

export interface PicChipShadow {
  /** ICW1 followed by the ICW2–ICW4 bytes written since (1–4 entries). */
  icw: number[];
  imr: number;
  /** In-service levels as followed through acknowledges and EOIs. */
  isr: number;
  priorityAdd: number;
  readRegSelect: number;
  specialMask: number;
  poll: number;
  rotateOnAutoEoi: number;
}

export interface PicShadow {
  master: PicChipShadow;
  slave: PicChipShadow;
}

/**
 * An interrupt acknowledge the hypervisor observed or performed for the
 * vCPU, in poll-word format (bit 7 = a level was acknowledged, bits 2–0 the
 * level; 0 = no request, the default IR7 vector went out and nothing
 * changed). `slave` is present when the master acknowledged its cascade
 * input. A hypervisor gets this exactly by taking external interrupts itself
 * (external-interrupt exiting) and acknowledging through the poll command:
 * OCW3 0x0C + read on the master, and on the slave when the master answers 2;
 * it then injects irq_base + level. With "acknowledge interrupt on exit" it
 * sees only the vector and must tell a real IR7 from the default one by
 * reading the ISR (see reconstructor `limitations`). The simulator's
 * PicPair.acknowledgeCycle() returns this shape.
 */
export interface PicInta {
  dir: 'inta';
  master: number;
  slave?: number;
}

export type PicShadowInput = PortAccess | PicInta;

/** ICW configuration decoded from a shadowed sequence, as the chip holds it. */
export interface PicIcwConfig {
  /** 0 complete, 1 awaiting ICW2, 2 awaiting ICW3, 3 awaiting ICW4. */
  initState: number;
  irqBase: number;
  init4: number;
  singleMode: number;
  ltim: number;
  autoEoi: number;
  specialFullyNested: number;
  /** How many entries of the sequence the state machine took (ICW1 included). */
  consumed: number;
}

/**
 * Runs the initialisation state machine of the datasheet's flow chart
 * ("Initialization Sequence") over ICW1 and the data bytes after it.
 */
export function decodeIcw(icw: readonly number[]): PicIcwConfig {
  const icw1 = icw[0] ?? ICW1_INIT;
  const cfg: PicIcwConfig = {
    initState: 1,
    irqBase: 0,
    init4: icw1 & ICW1_IC4 ? 1 : 0,
    singleMode: icw1 & ICW1_SNGL ? 1 : 0,
    ltim: icw1 & ICW1_LTIM ? 1 : 0,
    autoEoi: 0,
    specialFullyNested: 0,
    consumed: 1,
  };
  for (let i = 1; i < icw.length && cfg.initState !== 0; i++) {
    const v = icw[i]!;
    cfg.consumed++;
    if (cfg.initState === 1) {
      cfg.irqBase = v & ICW2_VECTOR_MASK;
      cfg.initState = cfg.singleMode ? (cfg.init4 ? 3 : 0) : 2;
    } else if (cfg.initState === 2) {
      cfg.initState = cfg.init4 ? 3 : 0;
    } else {
      cfg.autoEoi = v & ICW4_AEOI ? 1 : 0;
      cfg.specialFullyNested = v & ICW4_SFNM ? 1 : 0;
      cfg.initState = 0;
    }
  }
  return cfg;
}

/**
 * A chip after reset behaves exactly like one given ICW1 0x10 (edge, cascade,
 * no ICW4), ICW2 0x00 and ICW3 0x00: QEMU's pic_reset is its ICW1 reset plus
 * clearing ELCR and LTIM. The shadow therefore starts from that sequence, so
 * that a restore always replays a complete ICW sequence. It is valid only if
 * the hypervisor starts trapping at reset or initialises the chips itself
 * before handing them to the guest.
 */
function initialChip(): PicChipShadow {
  return { icw: [ICW1_INIT, 0x00, 0x00], imr: 0, isr: 0, priorityAdd: 0, readRegSelect: 0, specialMask: 0, poll: 0, rotateOnAutoEoi: 0 };
}

export function initialPicShadow(): PicShadow {
  return { master: initialChip(), slave: initialChip() };
}

/** The shadow's view of one acknowledge of `level` (see model intack). */
function acknowledged(c: PicChipShadow, level: number): PicChipShadow {
  if (decodeIcw(c.icw).autoEoi) return c.rotateOnAutoEoi ? { ...c, priorityAdd: (level + 1) & 7 } : c;
  return { ...c, isr: c.isr | (1 << level) };
}

function writeCommand(c: PicChipShadow, v: number): PicChipShadow {
  if (isIcw1(v)) return { ...initialChip(), icw: [v] };
  if (isOcw3(v)) {
    const n = { ...c };
    if (v & OCW3_POLL) n.poll = 1;
    if (v & OCW3_RR) n.readRegSelect = v & OCW3_RIS ? 1 : 0;
    if (v & OCW3_ESMM) n.specialMask = v & OCW3_SMM ? 1 : 0;
    return n;
  }
  const level = v & OCW2_LEVEL_MASK;
  switch (v & OCW2_COMMAND_MASK) {
    case OCW2_ROTATE_AEOI_CLEAR:
      return { ...c, rotateOnAutoEoi: 0 };
    case OCW2_ROTATE_AEOI_SET:
      return { ...c, rotateOnAutoEoi: 1 };
    case OCW2_NONSPECIFIC_EOI:
    case OCW2_ROTATE_NONSPECIFIC_EOI: {
      // Same selection as the chip: in special mask mode masked IS bits are skipped.
      const candidates = c.specialMask ? c.isr & ~c.imr : c.isr;
      const p = bestPriority(candidates, c.priorityAdd);
      if (p === 8) return c;
      const irq = levelOfPriority(p, c.priorityAdd);
      const n = { ...c, isr: c.isr & ~(1 << irq) };
      if ((v & OCW2_COMMAND_MASK) === OCW2_ROTATE_NONSPECIFIC_EOI) n.priorityAdd = (irq + 1) & 7;
      return n;
    }
    case OCW2_SPECIFIC_EOI:
      return { ...c, isr: c.isr & ~(1 << level) };
    case OCW2_SET_PRIORITY:
      return { ...c, priorityAdd: (level + 1) & 7 };
    case OCW2_ROTATE_SPECIFIC_EOI:
      return { ...c, isr: c.isr & ~(1 << level), priorityAdd: (level + 1) & 7 };
    default:
      return c;
  }
}

function writeData(c: PicChipShadow, v: number): PicChipShadow {
  // During initialisation the byte is the next ICW (at most three follow ICW1).
  if (decodeIcw(c.icw).initState !== 0) return { ...c, icw: [...c.icw, v] };
  return { ...c, imr: v };
}

function read(c: PicChipShadow, commandPort: boolean, v: number): PicChipShadow {
  if (c.poll) {
    const n = { ...c, poll: 0 };
    return v & POLL_INT ? acknowledged(n, v & POLL_LEVEL_MASK) : n;
  }
  if (!commandPort) return c.imr === v ? c : { ...c, imr: v };
  if (c.readRegSelect) return c.isr === v ? c : { ...c, isr: v };
  return c;
}

function reduceByte(s: PicShadow, dir: 'in' | 'out', port: number, v: number): PicShadow {
  let chip: 'master' | 'slave';
  let commandPort: boolean;
  switch (port) {
    case PIC_MASTER_CMD:
    case PIC_MASTER_DATA:
      chip = 'master';
      commandPort = port === PIC_MASTER_CMD;
      break;
    case PIC_SLAVE_CMD:
    case PIC_SLAVE_DATA:
      chip = 'slave';
      commandPort = port === PIC_SLAVE_CMD;
      break;
    default:
      return s; // ELCR and anything else: readable, nothing to shadow
  }
  const c = s[chip];
  const n = dir === 'out' ? (commandPort ? writeCommand(c, v) : writeData(c, v)) : read(c, commandPort, v);
  return n === c ? s : { ...s, [chip]: n };
}

/**
 * Folds one intercepted access (after the device handled it, with the value
 * read or written) or one observed acknowledge into the shadow. Pure: the
 * input shadow is not modified. Wide accesses are split into byte cycles on
 * consecutive ports, as the chips see them.
 */
export function reducePicShadow(shadow: PicShadow, access: PicShadowInput): PicShadow {
  if (access.dir === 'inta') {
    let s = shadow;
    if (access.master & POLL_INT) s = { ...s, master: acknowledged(s.master, access.master & POLL_LEVEL_MASK) };
    if (access.slave !== undefined && access.slave & POLL_INT) s = { ...s, slave: acknowledged(s.slave, access.slave & POLL_LEVEL_MASK) };
    return s;
  }
  let s = shadow;
  for (let i = 0; i < access.size; i++) s = reduceByte(s, access.dir, access.port + i, (access.value >>> (8 * i)) & 0xff);
  return s;
}

const isByte = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xff;
const isBit = (x: unknown): x is number => x === 0 || x === 1;

function isChipShadow(x: unknown): x is PicChipShadow {
  if (typeof x !== 'object' || x === null) return false;
  const c = x as Record<string, unknown>;
  return (
    Array.isArray(c.icw) &&
    c.icw.length >= 1 &&
    c.icw.length <= 4 &&
    c.icw.every(isByte) &&
    isIcw1(c.icw[0] as number) &&
    decodeIcw(c.icw as number[]).consumed === c.icw.length &&
    isByte(c.imr) &&
    isByte(c.isr) &&
    typeof c.priorityAdd === 'number' &&
    Number.isInteger(c.priorityAdd) &&
    c.priorityAdd >= 0 &&
    c.priorityAdd <= 7 &&
    isBit(c.readRegSelect) &&
    isBit(c.specialMask) &&
    isBit(c.poll) &&
    isBit(c.rotateOnAutoEoi)
  );
}

/** Validates a shadow that came over the wire. */
export function isPicShadow(x: unknown): x is PicShadow {
  if (typeof x !== 'object' || x === null) return false;
  const s = x as Record<string, unknown>;
  return isChipShadow(s.master) && isChipShadow(s.slave);
}
