/**
 * Register-exact model of the two cascaded 8259A interrupt controllers of a
 * PC/AT (master 0x20/0x21, slave 0xA0/0xA1 on master IR2) with the PIIX ELCR
 * (0x4D0/0x4D1).
 *
 * The model follows the Intel 8259A datasheet (231468). Where QEMU's
 * hw/intc/i8259.c behaves differently the model follows the datasheet and the
 * comment at that place says so; where the datasheet is silent the model
 * takes QEMU's behaviour and says so too (DESIGN rule 5). The per-chip state
 * is exactly QEMU's VMState "i8259" v1 field list plus the "i8259/ltim"
 * subsection and the elcr_mask property, under QEMU's names, so that a
 * differential test can map fields one to one. Two encodings differ: QEMU
 * stores single_mode as ICW1 & 2 and ltim as ICW1 & 8, the model stores 0/1.
 *
 * Datasheet behaviours that QEMU does not reproduce (each repeated where it
 * is implemented):
 *  - an IR input that falls before the acknowledge withdraws its request, in
 *    edge mode too (QEMU keeps an edge latched in IRR until acknowledged);
 *  - last_irr always holds the IR input levels: ICW1 resets the edge sense
 *    circuit so that an input already high must go low and high again, which
 *    the model gets by keeping the level (QEMU zeroes last_irr instead);
 *  - in special mask mode a non-specific EOI does not clear the IS bit of a
 *    masked level (QEMU clears the highest IS bit regardless of the mask);
 *  - in single mode (ICW1 SNGL) IR2 is an ordinary input and the master
 *    supplies its vector (QEMU always cascades).
 * And one chipset choice: an ELCR write makes a line switched to level
 * sensing take the current input level at once (QEMU re-senses only at the
 * next input change).
 */
import type { AccessSize, DeviceModel } from '../io.js';
import type { InterruptController } from '../irq.js';
import type { BusDevice } from '../../sim/bus.js';
import {
  ELCR_MASK_MASTER,
  ELCR_MASK_SLAVE,
  ELCR_MASTER,
  ELCR_SLAVE,
  ICW1_IC4,
  ICW1_LTIM,
  ICW1_SNGL,
  ICW2_VECTOR_MASK,
  ICW4_AEOI,
  ICW4_SFNM,
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
  PIC_CASCADE_IRQ,
  PIC_MASTER_CMD,
  PIC_MASTER_DATA,
  PIC_PORT_RANGES,
  PIC_SLAVE_CMD,
  PIC_SLAVE_DATA,
  POLL_INT,
  bestPriority,
  isIcw1,
  isOcw3,
  levelOfPriority,
} from './registers.js';

/** Every internal field of one 8259A (QEMU VMState "i8259" v1 names). */
export interface PicChipInternal {
  /** IR input levels as the chip sees them (bit n = IRn high). */
  last_irr: number;
  irr: number;
  imr: number;
  isr: number;
  /** The level with the highest priority (rotation). */
  priority_add: number;
  irq_base: number;
  /** 0: command-port reads return IRR, 1: ISR. */
  read_reg_select: number;
  /** A poll command is armed: the next read acknowledges. */
  poll: number;
  special_mask: number;
  /** 0 idle, 1 awaiting ICW2, 2 awaiting ICW3, 3 awaiting ICW4. */
  init_state: number;
  auto_eoi: number;
  rotate_on_auto_eoi: number;
  special_fully_nested_mode: number;
  init4: number;
  single_mode: number;
  elcr: number;
  /** ICW1 LTIM: all inputs level triggered ("i8259/ltim" subsection). */
  ltim: number;
  /** Which ELCR bits exist (a QEMU property, constant). */
  elcr_mask: number;
}

export interface PicInternal {
  master: PicChipInternal;
  slave: PicChipInternal;
}

/**
 * How an interrupt acknowledge cycle went, in the format of the poll word
 * (bit 7 = a request was acknowledged, bits 2–0 its level; 0 = none, the chip
 * put out its default IR7 vector). This is what a hypervisor that performs
 * the acknowledge through the poll command learns, and what the shadow
 * reducer consumes as a `{dir:'inta'}` input.
 */
export interface PicAcknowledge {
  vector: number;
  master: number;
  /** Present when the master acknowledged its cascade input IR2. */
  slave?: number;
}

export interface PicPairOptions {
  /** Bus name (default 'pic'). */
  name?: string;
  /** Called whenever the INTR output towards the vCPU changes. Must not re-enter the pair. */
  onIntr?: (level: boolean) => void;
}

/** One 8259A. */
class I8259 implements PicChipInternal {
  last_irr = 0;
  irr = 0;
  imr = 0;
  isr = 0;
  priority_add = 0;
  irq_base = 0;
  read_reg_select = 0;
  poll = 0;
  special_mask = 0;
  init_state = 0;
  auto_eoi = 0;
  rotate_on_auto_eoi = 0;
  special_fully_nested_mode = 0;
  init4 = 0;
  single_mode = 0;
  elcr = 0;
  ltim = 0;

  constructor(
    readonly isMaster: boolean,
    readonly elcr_mask: number,
  ) {}

  /** Inputs sensed by level: all with LTIM, else those the ELCR selects. */
  levelMask(): number {
    return this.ltim ? 0xff : this.elcr;
  }

  /**
   * An IR input changes. Datasheet "Edge and Level Triggered Modes": in edge
   * mode a low-to-high transition sets the request; in level mode a high
   * level does. In both modes "the IR inputs must remain high until after the
   * falling edge of the first INTA. If the IR input goes low before this time
   * a DEFAULT IR7 will occur": the priority cell gates the edge latch with the
   * input, so a falling input withdraws the request in edge mode too. QEMU
   * keeps an edge-mode IRR bit until it is acknowledged; the model follows
   * the datasheet. Devices must therefore hold their line until the
   * interrupt is taken, as real ones do (the 8254's OUT, the 8042's IRQ1).
   */
  setLine(pin: number, level: boolean): void {
    const bit = 1 << pin;
    if (((this.last_irr & bit) !== 0) === level) return;
    if (level) {
      this.last_irr |= bit;
      this.irr |= bit;
    } else {
      this.last_irr &= ~bit;
      this.irr &= ~bit;
    }
  }

  /**
   * The level the chip would signal on INT (QEMU pic_get_irq), or -1: the
   * highest-priority unmasked request, if it beats the highest level in
   * service. In special mask mode the IS bits of masked levels do not inhibit
   * (datasheet "Special Mask Mode"); whether an unmasked IS bit still blocks
   * lower levels the datasheet does not say, and the model keeps QEMU's
   * answer (it does). In special fully nested mode the master does not let
   * its IR2 in-service bit lock out further requests from the slave.
   */
  pendingIrq(): number {
    const requests = this.irr & ~this.imr & 0xff;
    const priority = bestPriority(requests, this.priority_add);
    if (priority === 8) return -1;
    let inService = this.isr;
    if (this.special_mask) inService &= ~this.imr;
    if (this.special_fully_nested_mode && this.isMaster) inService &= ~(1 << PIC_CASCADE_IRQ);
    return priority < bestPriority(inService, this.priority_add) ? levelOfPriority(priority, this.priority_add) : -1;
  }

  /**
   * Acknowledge level `irq` (an INTA sequence or a poll read). The IS bit is
   * set, unless automatic EOI ends the interrupt at once (rotating first when
   * rotate-in-AEOI is on). An edge request is consumed; a level request stays
   * as long as the input is high (datasheet "Level Triggered Mode"). The
   * datasheet describes AEOI for the INTA pulse sequence only and is silent on
   * poll reads; the model, like QEMU, treats both alike.
   */
  intack(irq: number): void {
    const bit = 1 << irq;
    if (this.auto_eoi) {
      if (this.rotate_on_auto_eoi) this.priority_add = (irq + 1) & 7;
    } else {
      this.isr |= bit;
    }
    if (!(this.levelMask() & bit)) this.irr &= ~bit;
  }

  /**
   * ICW1, or a hardware reset (then also elcr and ltim are cleared). QEMU
   * pic_reset_common additionally zeroes last_irr; the model keeps the input
   * levels there, which together with clearing the edge requests is the
   * datasheet's "edge sense circuit is reset, ... an IR input must make a
   * low-to-high transition to generate an interrupt". ISR is cleared as in
   * QEMU; the datasheet's list of ICW1 effects does not mention it.
   */
  private initReset(): void {
    this.imr = 0;
    this.isr = 0;
    this.priority_add = 0;
    this.irq_base = 0;
    this.read_reg_select = 0;
    this.poll = 0;
    this.special_mask = 0;
    this.init_state = 0;
    this.auto_eoi = 0;
    this.rotate_on_auto_eoi = 0;
    this.special_fully_nested_mode = 0;
    this.init4 = 0;
    this.single_mode = 0;
  }

  hardwareReset(): void {
    this.elcr = 0;
    this.ltim = 0;
    this.initReset();
    this.irr = this.last_irr & this.levelMask();
  }

  writeCommand(value: number): void {
    if (isIcw1(value)) {
      this.initReset();
      this.init_state = 1;
      this.init4 = value & ICW1_IC4 ? 1 : 0;
      this.single_mode = value & ICW1_SNGL ? 1 : 0;
      this.ltim = value & ICW1_LTIM ? 1 : 0;
      // Edge requests are dropped; level inputs that are high keep requesting.
      this.irr = this.last_irr & this.levelMask();
      return;
    }
    if (isOcw3(value)) {
      if (value & OCW3_POLL) this.poll = 1;
      if (value & OCW3_RR) this.read_reg_select = value & OCW3_RIS ? 1 : 0;
      if (value & OCW3_ESMM) this.special_mask = value & OCW3_SMM ? 1 : 0;
      return;
    }
    const level = value & OCW2_LEVEL_MASK;
    switch (value & OCW2_COMMAND_MASK) {
      case OCW2_ROTATE_AEOI_CLEAR:
        this.rotate_on_auto_eoi = 0;
        return;
      case OCW2_ROTATE_AEOI_SET:
        this.rotate_on_auto_eoi = 1;
        return;
      case OCW2_NONSPECIFIC_EOI:
      case OCW2_ROTATE_NONSPECIFIC_EOI: {
        // Datasheet "End of Interrupt": "an IS bit that is masked by an IMR
        // bit will not be cleared by a non-specific EOI if the 8259A is in
        // the Special Mask Mode". QEMU ignores the mask here.
        const candidates = this.special_mask ? this.isr & ~this.imr : this.isr;
        const priority = bestPriority(candidates, this.priority_add);
        if (priority === 8) return;
        const irq = levelOfPriority(priority, this.priority_add);
        this.isr &= ~(1 << irq);
        if ((value & OCW2_COMMAND_MASK) === OCW2_ROTATE_NONSPECIFIC_EOI) this.priority_add = (irq + 1) & 7;
        return;
      }
      case OCW2_SPECIFIC_EOI:
        this.isr &= ~(1 << level);
        return;
      case OCW2_SET_PRIORITY:
        this.priority_add = (level + 1) & 7;
        return;
      case OCW2_ROTATE_SPECIFIC_EOI:
        this.isr &= ~(1 << level);
        this.priority_add = (level + 1) & 7;
        return;
      default:
        // OCW2_NOP
        return;
    }
  }

  /** Data port: the next ICW while initialising, else OCW1 (the IMR). */
  writeData(value: number): void {
    switch (this.init_state) {
      case 0:
        this.imr = value;
        return;
      case 1:
        this.irq_base = value & ICW2_VECTOR_MASK;
        this.init_state = this.single_mode ? (this.init4 ? 3 : 0) : 2;
        return;
      case 2:
        // ICW3: the cascade wiring of a PC/AT is fixed (slave on IR2), so
        // like QEMU the model only steps the sequence.
        this.init_state = this.init4 ? 3 : 0;
        return;
      default:
        // ICW4. µPM, BUF and M/S change nothing a PC can observe (an 8086
        // vCPU, no bus buffers); QEMU ignores them as well.
        this.special_fully_nested_mode = value & ICW4_SFNM ? 1 : 0;
        this.auto_eoi = value & ICW4_AEOI ? 1 : 0;
        this.init_state = 0;
        return;
    }
  }

  /**
   * A read of either port. With a poll armed the read is the poll word and
   * acknowledges (datasheet: "the next RD pulse ... is treated as an
   * interrupt acknowledge", whichever A0); otherwise the command port gives
   * IRR or ISR per OCW3 and the data port the IMR.
   */
  read(commandPort: boolean): number {
    if (this.poll) {
      this.poll = 0;
      const irq = this.pendingIrq();
      if (irq < 0) return 0;
      this.intack(irq);
      return POLL_INT | irq;
    }
    if (commandPort) return this.read_reg_select ? this.isr : this.irr;
    return this.imr;
  }

  /**
   * ELCR write. PIIX: the register selects edge or level sensing of the line;
   * a line switched to level sensing reports its current level at once,
   * one switched to edge sensing keeps a request it has (there was no edge to
   * miss). QEMU only re-senses at the line's next change; the reconstructor
   * writes the ELCR before ICW1 so it does not depend on either choice.
   */
  writeElcr(value: number): void {
    this.elcr = value & this.elcr_mask;
    const level = this.levelMask();
    this.irr = (this.irr & ~level) | (this.last_irr & level);
  }

  snapshot(): PicChipInternal {
    return {
      last_irr: this.last_irr,
      irr: this.irr,
      imr: this.imr,
      isr: this.isr,
      priority_add: this.priority_add,
      irq_base: this.irq_base,
      read_reg_select: this.read_reg_select,
      poll: this.poll,
      special_mask: this.special_mask,
      init_state: this.init_state,
      auto_eoi: this.auto_eoi,
      rotate_on_auto_eoi: this.rotate_on_auto_eoi,
      special_fully_nested_mode: this.special_fully_nested_mode,
      init4: this.init4,
      single_mode: this.single_mode,
      elcr: this.elcr,
      ltim: this.ltim,
      elcr_mask: this.elcr_mask,
    };
  }
}

/**
 * The PC/AT interrupt controller pair, as the bus, the devices and the vCPU
 * see it. Devices drive IRQ0–15 with setIrq (IRQ2 is the cascade and cannot
 * be driven: on an AT the ISA bus's IRQ2 pin is wired to IRQ9); the vCPU
 * samples intr() and runs acknowledge() to take an interrupt.
 */
export class PicPair implements BusDevice, InterruptController, DeviceModel<PicInternal> {
  readonly name: string;
  readonly ports = PIC_PORT_RANGES;
  private readonly master = new I8259(true, ELCR_MASK_MASTER);
  private readonly slave = new I8259(false, ELCR_MASK_SLAVE);
  private readonly onIntr: ((level: boolean) => void) | undefined;
  private intrLevel = false;

  constructor(options: PicPairOptions = {}) {
    this.name = options.name ?? 'pic';
    this.onIntr = options.onIntr;
  }

  /** System reset (RESET# of the south bridge): both chips and the ELCR. IR input levels are the devices'. */
  reset(): void {
    this.master.hardwareReset();
    this.slave.hardwareReset();
    this.update();
  }

  /**
   * Port input. Wider accesses are split into byte cycles on consecutive
   * ports, as the ISA bus does (an `in ax, 0x4d0` reads both ELCRs).
   */
  portRead(port: number, size: AccessSize): number {
    let value = 0;
    for (let i = 0; i < size; i++) value |= this.readByte(port + i) << (8 * i);
    return value >>> 0;
  }

  portWrite(port: number, size: AccessSize, value: number): void {
    for (let i = 0; i < size; i++) this.writeByte(port + i, (value >>> (8 * i)) & 0xff);
  }

  private readByte(port: number): number {
    let value: number;
    switch (port) {
      case PIC_MASTER_CMD:
      case PIC_MASTER_DATA:
        value = this.master.read(port === PIC_MASTER_CMD);
        break;
      case PIC_SLAVE_CMD:
      case PIC_SLAVE_DATA:
        value = this.slave.read(port === PIC_SLAVE_CMD);
        break;
      case ELCR_MASTER:
        return this.master.elcr;
      case ELCR_SLAVE:
        return this.slave.elcr;
      default:
        return 0xff; // not decoded: the ISA bus floats high
    }
    this.update();
    return value;
  }

  private writeByte(port: number, value: number): void {
    switch (port) {
      case PIC_MASTER_CMD:
        this.master.writeCommand(value);
        break;
      case PIC_MASTER_DATA:
        this.master.writeData(value);
        break;
      case PIC_SLAVE_CMD:
        this.slave.writeCommand(value);
        break;
      case PIC_SLAVE_DATA:
        this.slave.writeData(value);
        break;
      case ELCR_MASTER:
        this.master.writeElcr(value);
        break;
      case ELCR_SLAVE:
        this.slave.writeElcr(value);
        break;
      default:
        return;
    }
    this.update();
  }

  setIrq(irq: number, level: boolean): void {
    if (!Number.isInteger(irq) || irq < 0 || irq > 15) throw new RangeError(`IRQ ${irq} out of range 0–15`);
    if (irq === PIC_CASCADE_IRQ) throw new RangeError('IRQ2 is the cascade input of the master; ISA IRQ2 is wired to IRQ9 on PC/AT boards');
    if (irq < 8) this.master.setLine(irq, level);
    else this.slave.setLine(irq - 8, level);
    this.update();
  }

  intr(): boolean {
    return this.intrLevel;
  }

  acknowledge(): number {
    return this.acknowledgeCycle().vector;
  }

  /**
   * One interrupt acknowledge sequence, reporting what happened. The master
   * resolves and commits on the first INTA pulse (IS bit set, edge request
   * consumed); when that was the cascade input, the slave addressed over CAS
   * resolves its own request afterwards. `midCycle` runs between the two, to
   * model a device withdrawing its request inside the INTA cycle: the slave
   * then answers with its default IR7 (spurious IRQ15) while the master's
   * IS2 bit stays set, as on real boards. When no request is left at the
   * first pulse, the master answers with its default IR7 (spurious IRQ7) and
   * sets no IS bit.
   */
  acknowledgeCycle(midCycle?: () => void): PicAcknowledge {
    const m = this.master;
    const irq = m.pendingIrq();
    if (irq < 0) {
      midCycle?.();
      return { vector: (m.irq_base + 7) & 0xff, master: 0 };
    }
    m.intack(irq);
    this.update();
    midCycle?.();
    // In single mode there is no slave to address: the datasheet's SNGL means
    // IR2 is an ordinary input (QEMU cascades regardless of SNGL).
    if (irq !== PIC_CASCADE_IRQ || m.single_mode) return { vector: (m.irq_base + irq) & 0xff, master: POLL_INT | irq };
    const s = this.slave;
    const slaveIrq = s.pendingIrq();
    if (slaveIrq < 0) return { vector: (s.irq_base + 7) & 0xff, master: POLL_INT | irq, slave: 0 };
    s.intack(slaveIrq);
    this.update();
    return { vector: (s.irq_base + slaveIrq) & 0xff, master: POLL_INT | irq, slave: POLL_INT | slaveIrq };
  }

  inspect(): PicInternal {
    return { master: this.master.snapshot(), slave: this.slave.snapshot() };
  }

  /** Propagate the slave's INT to master IR2, then the master's INT to the vCPU. */
  private update(): void {
    this.master.setLine(PIC_CASCADE_IRQ, this.slave.pendingIrq() >= 0);
    const level = this.master.pendingIrq() >= 0;
    if (level !== this.intrLevel) {
      this.intrLevel = level;
      this.onIntr?.(level);
    }
  }
}
