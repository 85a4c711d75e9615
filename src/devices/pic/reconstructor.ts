/**
 * Capture and restore of the cascaded 8259 pair through port I/O only.
 *
 * capture (guest paused): reads IMR, IRR (OCW3 0x0A), ISR (OCW3 0x0B) and the
 * ELCRs, combines them with the hypervisor's shadow (ICW sequence, rotation,
 * OCW3 state, rotate-in-AEOI), and puts read_reg_select back in the same
 * program. A poll the guest armed but has not read yet cannot be stepped
 * around (any read answers it), so the capture takes it, derives the state
 * before it, and `rollback` re-arms it.
 *
 * restore (destination pair reset, guest not running): one IoProgram. Its
 * order follows from what each command clears:
 *   1. ELCRs first: ICW1 keeps the requests of level-sensed inputs and drops
 *      edge requests, so the sensing must be final before any ICW1.
 *   2. The slave is quickly initialised and fully masked, so its INT (master
 *      IR2) is low while the master's edge sense is reset.
 *   3. Master ICW sequence, then slave ICW sequence: ICW1 clears IMR, ISR,
 *      rotation, special mask, read select, poll and rotate-in-AEOI, so
 *      everything else comes after it. The slave's ICW1 unmasks it; if one
 *      of its level inputs is asserted its INT rises: a fresh edge on master
 *      IR2. A half-done sequence is replayed as far as the guest got and then
 *      left open, and the remaining state goes in through the command port,
 *      which the chip accepts between ICWs (QEMU does; the datasheet is
 *      silent, so this is used only when the guest itself left the chip there,
 *      or, for the same reason, to set IS bits before an ICW4 that selects
 *      automatic EOI).
 *   4. IS bits: an IS bit is set only by acknowledging a request on its
 *      level. For each, OCW2 "set priority" makes that level the highest (so
 *      no IS bit set before blocks it), then OCW3 poll and a read acknowledge
 *      it. A request exists on the destination only where the device holds a
 *      level-sensed line asserted (restored before the PIC), and on master
 *      IR2 while the slave's INT is up; see `limitations` for the rest.
 *   5. Each chip's held ICW4, IMR (OCW1), rotation (OCW2 set priority),
 *      special mask, rotate-in-AEOI; in between, master IR2's edge latch is
 *      made to match by toggling the slave's INT (mask and unmask, or poll
 *      and specific EOI mid-initialisation) or by consuming the edge with a
 *      poll on the master.
 *   6. Read-back of ISR, IMR and ELCR, checked against the plan: a wrong IS
 *      bit would leave an interrupt in service that the guest never ends.
 *   7. read_reg_select and an armed poll last, since reads would consume the
 *      poll.
 *
 * The program is planned on a replica PicPair fed only with captured data
 * (never the device being restored), so each step's effect, including the
 * slave INT edges on master IR2, is predicted and the reads can be checked.
 *
 * Ordering with other devices: the PIC restore must run after the devices
 * that drive its lines are restored (lines at their final levels) and before
 * the vCPU resumes; no line should change while the program runs (edge
 * requests raised meanwhile are harmless and not checked).
 */
import { BaremigError } from '../../errors.js';
import type { DeviceAccess, IoOp, IoProgram, Reconstructor, RestoreReport } from '../io.js';
import { PicPair, type PicChipInternal, type PicInternal } from './model.js';
import {
  ELCR_MASTER,
  ELCR_SLAVE,
  ICW1_INIT,
  OCW2_ROTATE_AEOI_CLEAR,
  OCW2_ROTATE_AEOI_SET,
  OCW2_SPECIFIC_EOI,
  OCW3_CLEAR_SMM,
  OCW3_POLL_CMD,
  OCW3_READ_IRR,
  OCW3_READ_ISR,
  OCW3_SET_SMM,
  PIC_CASCADE_IRQ,
  PIC_MASTER_CMD,
  PIC_MASTER_DATA,
  PIC_SLAVE_CMD,
  PIC_SLAVE_DATA,
  POLL_INT,
  POLL_LEVEL_MASK,
  ocw2MakeHighest,
} from './registers.js';
import { PIC_SHADOW_KEY, decodeIcw, isPicShadow } from './shadow.js';

/** One chip as captured: hardware reads plus the shadow's write-only state. */
export interface PicChipState {
  /** ICW1 and the ICW2–ICW4 bytes written since (shadow). */
  icw: number[];
  /** Read from the chip (as they were before a poll the capture consumed). */
  imr: number;
  irr: number;
  isr: number;
  elcr: number;
  /** Shadow. */
  priorityAdd: number;
  readRegSelect: number;
  specialMask: number;
  poll: number;
  rotateOnAutoEoi: number;
  /** Poll word the capture's read consumed because the guest had armed a poll; null if none. */
  consumedPoll: number | null;
}

export interface PicState {
  master: PicChipState;
  slave: PicChipState;
  /** Registers where the shadow's own tracking disagreed with the chip (diagnostic; the chip wins). */
  shadowMismatch: string[];
}

type ChipName = 'master' | 'slave';
const CHIPS: readonly ChipName[] = ['master', 'slave'];
const CMD: Record<ChipName, number> = { master: PIC_MASTER_CMD, slave: PIC_SLAVE_CMD };
const DATA: Record<ChipName, number> = { master: PIC_MASTER_DATA, slave: PIC_SLAVE_DATA };
const ELCR: Record<ChipName, number> = { master: ELCR_MASTER, slave: ELCR_SLAVE };

export interface PicLimitation {
  field: string;
  limitation: string;
  closestSafe: string;
}

/** What the restore cannot recreate through port I/O, and what it does instead. */
export const limitations: readonly PicLimitation[] = [
  {
    field: 'isr',
    limitation:
      'An IS bit is set only by acknowledging a request on that level, and no port raises an IRQ line. The restore recreates the IS bits of levels whose line is level-sensed and asserted at capture (IRR shows it; the device, restored first, holds it on the destination), and master IS2 when any such slave line is asserted. IS bits of edge-sensed levels, or of lines no longer asserted (a timer tick in service, a level device already quieted), cannot be recreated.',
    closestSafe:
      'Those IS bits are left clear, never set in excess: ISR(destination) ⊆ ISR(source), so nothing can stay in service forever. A specific EOI the guest sends for a lost level clears nothing; non-specific EOIs retire the remaining levels in priority order. Lower-priority levels the lost bit was holding off can interrupt earlier than on the source.',
  },
  {
    field: 'irr',
    limitation:
      'A pending edge-triggered request (line high, not yet acknowledged) needs a fresh low-to-high transition after ICW1 resets the edge sense, which no port can produce. Exception: master IR2, whose input is the slave INT the restore itself can toggle.',
    closestSafe:
      'The request is dropped, never invented: IRR(destination) ⊆ IRR(source) (master IR2 follows the slave). The guest misses that one interrupt (a PIT tick); a device that keeps an edge line high until serviced waits for its next edge. RestoreReport.extra.lostIrrBits counts such requests so the caller can let the device re-raise them.',
  },
  {
    field: 'last_irr',
    limitation: 'The IR input levels are the devices\' outputs, not 8259 state: they are restored by restoring the devices (before the PIC). Master bit 2 is the slave\'s INT output.',
    closestSafe: 'Master IR2 level and its edge latch follow the restored slave; where slave bits were lost above, the slave INT (and master IR2) can differ from the source.',
  },
  {
    field: 'priority_add',
    limitation:
      'Rotation cannot be read back. The shadow derives it exactly only if the hypervisor feeds it every interrupt acknowledge (`{dir:\'inta\'}`): rotate-on-non-specific-EOI depends on the levels in service and rotate-in-AEOI happens on acknowledges. A hypervisor that sees only the vector ("acknowledge interrupt on exit") cannot tell a real IR7 from the default IR7 in automatic-EOI mode.',
    closestSafe: 'None needed when acknowledges are taken through the poll command (exact). Otherwise the shadow assumes a real IR7, and rotation after a default IR7 in rotate-in-AEOI mode can be off.',
  },
  {
    field: 'shadow',
    limitation: 'The shadow is valid only from a known chip state: the hypervisor must trap the ports from reset, or initialise both chips itself before the guest (or its BIOS) runs.',
    closestSafe: 'capture() cross-checks the shadowed IMR and ISR against the chip and lists differences in PicState.shadowMismatch.',
  },
  {
    field: 'init_state',
    limitation:
      'The datasheet does not say whether OCW2/OCW3 (and poll reads) are taken between ICWs. The restore relies on it only where the source itself was left mid-sequence (the guest set that state the same way) and to set IS bits before an ICW4 that selects automatic EOI; QEMU accepts them.',
    closestSafe: 'A chip that ignored them would answer the planned poll reads or the ISR read-back differently: restore then fails with DEVICE before the guest runs, and the source resumes.',
  },
  {
    field: 'poll (rollback)',
    limitation:
      'A poll the guest armed but has not read is consumed by the capture (any read answers it). rollback() re-arms it and ends the IS bit or undoes the AEOI rotation it caused, but an edge-triggered request the consumed poll acknowledged cannot be raised again (nor the master IR2 edge if the slave\'s INT moved).',
    closestSafe: 'On the source after rollback the guest\'s read returns the next request or 0 (no request), i.e. that edge interrupt is missed; level requests are unaffected. The destination gets the exact pre-poll state.',
  },
];

// ---------------------------------------------------------------- capture

async function capture(src: DeviceAccess): Promise<PicState> {
  const log = await src.shadow();
  const shadow = log[PIC_SHADOW_KEY];
  if (!isPicShadow(shadow)) {
    throw new BaremigError('DEVICE', `no valid 8259 shadow under '${PIC_SHADOW_KEY}' in the shadow log: the hypervisor must trap ports 0x20/0x21/0xa0/0xa1 and feed reducePicShadow`);
  }
  const program: IoProgram = [];
  for (const chip of CHIPS) {
    const sh = shadow[chip];
    if (sh.poll) program.push({ op: 'in', port: CMD[chip], size: 1 });
    // Read the register the guest does not have selected first, so that the
    // guest's read_reg_select is back after two OCW3 writes.
    const [first, second] = sh.readRegSelect ? [OCW3_READ_IRR, OCW3_READ_ISR] : [OCW3_READ_ISR, OCW3_READ_IRR];
    program.push(
      { op: 'out', port: CMD[chip], size: 1, value: first },
      { op: 'in', port: CMD[chip], size: 1 },
      { op: 'out', port: CMD[chip], size: 1, value: second },
      { op: 'in', port: CMD[chip], size: 1 },
      { op: 'in', port: DATA[chip], size: 1 },
    );
  }
  program.push({ op: 'in', port: ELCR_MASTER, size: 1 }, { op: 'in', port: ELCR_SLAVE, size: 1 });
  const { reads } = await src.run(program);
  let r = 0;
  const next = (): number => {
    const v = reads[r++];
    if (typeof v !== 'number') throw new BaremigError('DEVICE', `8259 capture: read ${r - 1} missing or not a port value`);
    return v & 0xff;
  };
  const raw = CHIPS.map((chip) => {
    const poll = shadow[chip].poll ? next() : null;
    const first = next();
    const second = next();
    return { poll, first, second, imr: next() };
  });
  const elcr: Record<ChipName, number> = { master: next(), slave: next() };

  const mismatch: string[] = [];
  const state = {} as Record<ChipName, PicChipState>;
  CHIPS.forEach((chip, i) => {
    const sh = shadow[chip];
    const cfg = decodeIcw(sh.icw);
    const { poll, first, second, imr } = raw[i]!;
    let [irr, isr] = sh.readRegSelect ? [first, second] : [second, first];
    if (poll !== null && poll & POLL_INT) {
      // Undo what the consumed poll did to the readable registers: it set
      // the IS bit (unless AEOI) and consumed an edge request. Only master IR2
      // in special fully nested mode can be acknowledged while already in
      // service; the shadow knows whether it was.
      const bit = 1 << (poll & POLL_LEVEL_MASK);
      if (!cfg.autoEoi) isr = (isr & ~bit) | (sh.isr & bit);
      const levelMask = cfg.ltim ? 0xff : elcr[chip];
      if (!(levelMask & bit)) irr |= bit;
    }
    if (sh.imr !== imr) mismatch.push(`${chip}.imr`);
    if (sh.isr !== isr) mismatch.push(`${chip}.isr`);
    state[chip] = {
      icw: [...sh.icw],
      imr,
      irr,
      isr,
      elcr: elcr[chip],
      priorityAdd: sh.priorityAdd,
      readRegSelect: sh.readRegSelect,
      specialMask: sh.specialMask,
      poll: sh.poll,
      rotateOnAutoEoi: sh.rotateOnAutoEoi,
      consumedPoll: poll,
    };
  });
  return { master: state.master, slave: state.slave, shadowMismatch: mismatch };
}

/** Re-arms a poll the capture consumed and undoes its acknowledge (see limitations). */
function rollbackProgram(state: PicState): IoProgram {
  const program: IoProgram = [];
  for (const chip of ['slave', 'master'] as const) {
    const s = state[chip];
    if (s.consumedPoll === null) continue;
    if (s.consumedPoll & POLL_INT) {
      const level = s.consumedPoll & POLL_LEVEL_MASK;
      const cfg = decodeIcw(s.icw);
      if (!cfg.autoEoi) {
        if (!(s.isr & (1 << level))) program.push({ op: 'out', port: CMD[chip], size: 1, value: OCW2_SPECIFIC_EOI | level });
      } else if (s.rotateOnAutoEoi) {
        program.push({ op: 'out', port: CMD[chip], size: 1, value: ocw2MakeHighest(s.priorityAdd) });
      }
    }
    program.push({ op: 'out', port: CMD[chip], size: 1, value: OCW3_POLL_CMD });
  }
  return program;
}

// ---------------------------------------------------------------- restore planning

interface ReadCheck {
  value: number;
  what: string;
}

export interface PicRestorePlan {
  program: IoProgram;
  /** One entry per reading op, in order: the value the plan predicts, or null where it is not checked. */
  checks: Array<ReadCheck | null>;
  /** The state the destination reaches if its lines are as assumed. */
  predicted: PicInternal;
  /** Bits of the captured IRR/ISR the restore cannot recreate (see limitations). */
  lost: Record<ChipName, { isr: number; irr: number }>;
}

/** Executes each planned op on the replica as it is emitted. */
class Planner {
  readonly program: IoOp[] = [];
  readonly checks: Array<ReadCheck | null> = [];
  readonly replica = new PicPair({ name: 'pic-restore-plan' });

  out(port: number, value: number): void {
    this.program.push({ op: 'out', port, size: 1, value });
    this.replica.portWrite(port, 1, value);
  }

  in(port: number, what: string | null): number {
    this.program.push({ op: 'in', port, size: 1 });
    const value = this.replica.portRead(port, 1);
    this.checks.push(what === null ? null : { value, what });
    return value;
  }

  chip(name: ChipName): PicChipInternal {
    return this.replica.inspect()[name];
  }
}

function bits(mask: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < 8; i++) if (mask & (1 << i)) out.push(i);
  return out;
}

function planError(msg: string): BaremigError {
  return new BaremigError('INTERNAL', `8259 restore plan: ${msg}`);
}

/**
 * Plans the restore program for a captured state. Pure: usable by the
 * coordinator to know in advance what will be lost.
 */
export function planPicRestore(state: PicState): PicRestorePlan {
  const p = new Planner();
  const cfg = { master: decodeIcw(state.master.icw), slave: decodeIcw(state.slave.icw) };
  for (const chip of CHIPS) {
    const icw = state[chip].icw;
    if (icw.length < 1 || !(icw[0]! & ICW1_INIT) || cfg[chip].consumed !== icw.length) {
      throw new BaremigError('BAD_REQUEST', `8259 state: ${chip} ICW sequence [${icw.join(', ')}] is not ICW1 followed by the ICWs it asks for`);
    }
  }

  // The destination's lines as the plan assumes them: level-sensed lines
  // asserted exactly where the captured IRR shows them (IRR follows a level
  // input). Edge-sensed lines are unknown and irrelevant: after ICW1 an input
  // that is already high requests nothing until it goes low and high again.
  const levelMask = (c: ChipName): number => (cfg[c].ltim ? 0xff : state[c].elcr);
  const levelHigh = { master: state.master.irr & levelMask('master') & ~(1 << PIC_CASCADE_IRQ), slave: state.slave.irr & levelMask('slave') };
  for (const b of bits(levelHigh.master)) p.replica.setIrq(b, true);
  for (const b of bits(levelHigh.slave)) p.replica.setIrq(8 + b, true);

  // Which ICW is held back: with automatic EOI an acknowledge sets no IS bit,
  // so IS bits are recreated before the ICW4 that selects it.
  const complete = { master: cfg.master.initState === 0, slave: cfg.slave.initState === 0 };
  const held: Record<ChipName, number | null> = { master: null, slave: null };
  for (const chip of CHIPS) {
    if (complete[chip] && cfg[chip].autoEoi && state[chip].isr !== 0) held[chip] = state[chip].icw[state[chip].icw.length - 1]!;
  }

  // 1. Sensing.
  p.out(ELCR_MASTER, state.master.elcr);
  p.out(ELCR_SLAVE, state.slave.elcr);
  // 2. Slave quiet: ICW1 0x10, ICW2, ICW3, then mask everything.
  p.out(PIC_SLAVE_CMD, ICW1_INIT);
  p.out(PIC_SLAVE_DATA, 0x00);
  p.out(PIC_SLAVE_DATA, 0x00);
  p.out(PIC_SLAVE_DATA, 0xff);
  // 3. ICW sequences, master first so its IR2 edge sense is reset while the slave is masked.
  for (const chip of CHIPS) {
    const icw = state[chip].icw;
    p.out(CMD[chip], icw[0]!);
    const end = icw.length - (held[chip] === null ? 0 : 1);
    for (let i = 1; i < end; i++) p.out(DATA[chip], icw[i]!);
  }
  // 4. IS bits, each acknowledged as the highest priority level.
  for (const chip of CHIPS) {
    for (const level of bits(state[chip].isr)) {
      const now = p.chip(chip);
      const bit = 1 << level;
      if (now.isr & bit || !(now.irr & bit) || now.imr & bit) continue; // no request: lost (limitations)
      if (now.priority_add !== level) p.out(CMD[chip], ocw2MakeHighest(level));
      p.out(CMD[chip], OCW3_POLL_CMD);
      const word = p.in(CMD[chip], `${chip} poll acknowledging IS${level}`);
      if (word !== (POLL_INT | level)) throw planError(`${chip} poll for level ${level} answered 0x${word.toString(16)}`);
    }
  }
  // 5. Remaining state: slave first (its INT must be final before master IR2 is settled).
  const finish = (chip: ChipName): void => {
    const s = state[chip];
    if (held[chip] !== null) p.out(DATA[chip], held[chip]!);
    if (complete[chip] && p.chip(chip).imr !== s.imr) p.out(DATA[chip], s.imr);
    if (p.chip(chip).priority_add !== s.priorityAdd) p.out(CMD[chip], ocw2MakeHighest(s.priorityAdd));
    if (p.chip(chip).special_mask !== s.specialMask) p.out(CMD[chip], s.specialMask ? OCW3_SET_SMM : OCW3_CLEAR_SMM);
    if (p.chip(chip).rotate_on_auto_eoi !== s.rotateOnAutoEoi) p.out(CMD[chip], s.rotateOnAutoEoi ? OCW2_ROTATE_AEOI_SET : OCW2_ROTATE_AEOI_CLEAR);
  };
  finish('slave');
  settleMasterIr2(p, state, complete.slave);
  finish('master');
  // 6. Read-back.
  for (const chip of CHIPS) {
    p.out(CMD[chip], OCW3_READ_ISR);
    p.in(CMD[chip], `${chip} ISR`);
    p.in(DATA[chip], `${chip} IMR`);
    p.in(ELCR[chip], `${chip} ELCR`);
  }
  // 7. read_reg_select (ISR selected by the read-back) and an armed poll.
  for (const chip of CHIPS) {
    if (!state[chip].readRegSelect) p.out(CMD[chip], OCW3_READ_IRR);
    if (state[chip].poll) p.out(CMD[chip], OCW3_POLL_CMD);
  }

  const predicted = p.replica.inspect();
  const lost = {} as PicRestorePlan['lost'];
  for (const chip of CHIPS) {
    const s = state[chip];
    const c = cfg[chip];
    const got = predicted[chip];
    const want: Array<[keyof PicChipInternal, number]> = [
      ['imr', s.imr],
      ['priority_add', s.priorityAdd],
      ['irq_base', c.irqBase],
      ['read_reg_select', s.readRegSelect],
      ['poll', s.poll],
      ['special_mask', s.specialMask],
      ['init_state', c.initState],
      ['auto_eoi', c.autoEoi],
      ['rotate_on_auto_eoi', s.rotateOnAutoEoi],
      ['special_fully_nested_mode', c.specialFullyNested],
      ['init4', c.init4],
      ['single_mode', c.singleMode],
      ['elcr', s.elcr & got.elcr_mask],
      ['ltim', c.ltim],
    ];
    for (const [field, value] of want) if (got[field] !== value) throw planError(`${chip}.${field} would be ${got[field]}, captured ${value}`);
    if (got.isr & ~s.isr) throw planError(`${chip} would have IS bits 0x${(got.isr & ~s.isr).toString(16)} the source has not`);
    // Master IR2 follows the restored slave's INT; any other extra request would be invented.
    const extraIrr = got.irr & ~s.irr & (chip === 'master' ? ~(1 << PIC_CASCADE_IRQ) : 0xff);
    if (extraIrr) throw planError(`${chip} would request levels 0x${extraIrr.toString(16)} the source does not`);
    lost[chip] = { isr: s.isr & ~got.isr, irr: s.irr & ~got.irr };
  }
  return { program: p.program, checks: p.checks, predicted, lost };
}

/**
 * Make master IR2's edge latch (IRR bit 2) match the capture, now that the
 * slave is final and its INT is the master's IR2 input. Level-sensed IR2
 * (master LTIM) simply follows the input. An edge request can only exist
 * while the input is high; if the capture shows one and the plan has none,
 * the slave's INT is taken low and high again; if the plan has one the
 * capture does not, the master acknowledges it and the IS bit is put back as
 * it was.
 */
function settleMasterIr2(p: Planner, state: PicState, slaveComplete: boolean): void {
  const m = p.chip('master');
  if (m.ltim) return;
  const bit = 1 << PIC_CASCADE_IRQ;
  const inputHigh = (m.last_irr & bit) !== 0;
  const want = inputHigh && (state.master.irr & bit) !== 0;
  const have = (m.irr & bit) !== 0;
  if (want && !have) {
    if (slaveComplete) {
      p.out(PIC_SLAVE_DATA, 0xff);
      p.out(PIC_SLAVE_DATA, state.slave.imr);
    } else {
      // IMR writes would be taken as ICWs: acknowledge the slave's current
      // request (its INT drops: that level is now the highest in service)
      // and end it again with a specific EOI (its INT rises). Without ICW4
      // there is no automatic EOI, so the poll does set the IS bit.
      p.out(PIC_SLAVE_CMD, OCW3_POLL_CMD);
      const word = p.in(PIC_SLAVE_CMD, 'slave poll toggling master IR2');
      if (word & POLL_INT) p.out(PIC_SLAVE_CMD, OCW2_SPECIFIC_EOI | (word & POLL_LEVEL_MASK));
    }
  } else if (!want && have) {
    const inService = (m.isr & bit) !== 0;
    if (inService) p.out(PIC_MASTER_CMD, OCW2_SPECIFIC_EOI | PIC_CASCADE_IRQ);
    if (p.chip('master').priority_add !== PIC_CASCADE_IRQ) p.out(PIC_MASTER_CMD, ocw2MakeHighest(PIC_CASCADE_IRQ));
    p.out(PIC_MASTER_CMD, OCW3_POLL_CMD);
    const word = p.in(PIC_MASTER_CMD, 'master poll consuming the IR2 edge');
    if (word !== (POLL_INT | PIC_CASCADE_IRQ)) throw planError(`master poll for IR2 answered 0x${word.toString(16)}`);
    if (!inService && p.chip('master').isr & bit) p.out(PIC_MASTER_CMD, OCW2_SPECIFIC_EOI | PIC_CASCADE_IRQ);
  }
}

function popcount(x: number): number {
  let n = 0;
  for (let v = x; v; v &= v - 1) n++;
  return n;
}

async function restore(dst: DeviceAccess, state: PicState): Promise<RestoreReport> {
  const plan = planPicRestore(state);
  const result = await dst.run(plan.program);
  if (result.reads.length !== plan.checks.length) throw new BaremigError('DEVICE', `8259 restore: ${result.reads.length} reads returned, ${plan.checks.length} expected`);
  plan.checks.forEach((check, i) => {
    const v = result.reads[i];
    if (check !== null && v !== check.value) {
      throw new BaremigError(
        'DEVICE',
        `8259 restore: ${check.what} read 0x${typeof v === 'number' ? v.toString(16) : '?'}, planned 0x${check.value.toString(16)} — are the devices driving level-triggered lines restored before the PIC?`,
        { read: i },
      );
    }
  });
  return {
    programs: 1,
    ops: plan.program.length,
    elapsedUs: result.elapsedUs,
    extra: {
      lostIsrBits: popcount(plan.lost.master.isr) + popcount(plan.lost.slave.isr),
      lostIrrBits: popcount(plan.lost.master.irr) + popcount(plan.lost.slave.irr),
    },
  };
}

async function rollback(src: DeviceAccess, state: PicState): Promise<void> {
  const program = rollbackProgram(state);
  if (program.length > 0) await src.run(program);
}

export const picReconstructor: Reconstructor<PicState> = {
  kind: 'pic',
  capture,
  restore,
  rollback,
};
