/**
 * The cascaded 8259A pair of a PC/AT: ports, command words and the priority
 * arithmetic shared by the model, the hypervisor's shadow and the
 * reconstructor.
 *
 * Sources: Intel 8259A Programmable Interrupt Controller datasheet
 * (231468), "Programming the 8259A" (ICW1–ICW4, OCW1–OCW3); Intel 82371AB
 * PIIX4 datasheet for the ELCR; QEMU hw/intc/i8259.c and i8259_common.c for
 * the behaviour of a widely used emulation (see ../../../shared/reference).
 */

/** Master: A0=0 command port (ICW1, OCW2, OCW3, IRR/ISR/poll reads). */
export const PIC_MASTER_CMD = 0x20;
/** Master: A0=1 data port (ICW2–ICW4 during initialisation, else OCW1 = IMR). */
export const PIC_MASTER_DATA = 0x21;
export const PIC_SLAVE_CMD = 0xa0;
export const PIC_SLAVE_DATA = 0xa1;
/**
 * Edge/Level Control Registers of the PIIX-family south bridge, one bit per
 * IRQ (1 = level triggered): 0x4D0 for IRQ0–7, 0x4D1 for IRQ8–15.
 */
export const ELCR_MASTER = 0x4d0;
export const ELCR_SLAVE = 0x4d1;

/** Inclusive port ranges the pair decodes. */
export const PIC_PORT_RANGES: ReadonlyArray<readonly [number, number]> = [
  [PIC_MASTER_CMD, PIC_MASTER_DATA],
  [PIC_SLAVE_CMD, PIC_SLAVE_DATA],
  [ELCR_MASTER, ELCR_SLAVE],
];

/** The master input that carries the slave's INT output on every PC/AT board. */
export const PIC_CASCADE_IRQ = 2;

/**
 * ELCR bits that can be set. IRQ0 (PIT), IRQ1 (keyboard), IRQ2 (cascade),
 * IRQ8 (RTC) and IRQ13 (FPU error) are edge-only on PIIX ("must be 0"); QEMU
 * uses the same masks (i8259_init_chip: 0xf8 master, 0xde slave).
 */
export const ELCR_MASK_MASTER = 0xf8;
export const ELCR_MASK_SLAVE = 0xde;

// ---------------------------------------------------------------- ICW1
// Written to the command port with D4=1. Starts initialisation: the edge
// sense circuit is reset, IMR cleared, IR7 gets lowest priority, special mask
// mode cleared, status read set to IRR, and ICW4 functions zeroed (datasheet
// "Initialization Command Words").
/** D0 IC4: an ICW4 follows. */
export const ICW1_IC4 = 0x01;
/** D1 SNGL: single 8259A, no ICW3. */
export const ICW1_SNGL = 0x02;
/** D2 ADI: call address interval (8080/85 mode only; ignored in 8086 mode). */
export const ICW1_ADI = 0x04;
/** D3 LTIM: level triggered mode for all eight inputs. */
export const ICW1_LTIM = 0x08;
/** D4: identifies ICW1 on the command port. */
export const ICW1_INIT = 0x10;

// ---------------------------------------------------------------- ICW2
/** T7–T3: the vector base in 8086 mode; the low three bits come from the IR level. */
export const ICW2_VECTOR_MASK = 0xf8;

// ---------------------------------------------------------------- ICW3
/** Master ICW3: bit n set = a slave on IRn. The PC/AT value is 0x04. */
export const ICW3_MASTER_PC = 0x04;
/** Slave ICW3: the slave's ID (the master input it drives). The PC/AT value is 2. */
export const ICW3_SLAVE_PC = 0x02;

// ---------------------------------------------------------------- ICW4
/** D0 µPM: 8086/88 mode (0 = 8080/85 CALL sequence, never used on a PC). */
export const ICW4_UPM = 0x01;
/** D1 AEOI: automatic end of interrupt at the end of the INTA sequence. */
export const ICW4_AEOI = 0x02;
/** D2 M/S: master/slave select in buffered mode. */
export const ICW4_MS = 0x04;
/** D3 BUF: buffered mode. */
export const ICW4_BUF = 0x08;
/** D4 SFNM: special fully nested mode (master only). */
export const ICW4_SFNM = 0x10;

// ---------------------------------------------------------------- OCW2
// Command port, D4=0 D3=0. Bits 7–5 are R, SL, EOI; bits 2–0 the level L.
export const OCW2_LEVEL_MASK = 0x07;
export const OCW2_COMMAND_MASK = 0xe0;
/** R=0 SL=0 EOI=0: rotate in automatic EOI mode (clear). */
export const OCW2_ROTATE_AEOI_CLEAR = 0x00;
/** EOI=1: non-specific EOI, clears the highest-priority ISR bit. */
export const OCW2_NONSPECIFIC_EOI = 0x20;
/** SL=1: no operation. */
export const OCW2_NOP = 0x40;
/** SL=1 EOI=1: specific EOI for level L. */
export const OCW2_SPECIFIC_EOI = 0x60;
/** R=1: rotate in automatic EOI mode (set). */
export const OCW2_ROTATE_AEOI_SET = 0x80;
/** R=1 EOI=1: rotate on non-specific EOI (the level just ended becomes lowest). */
export const OCW2_ROTATE_NONSPECIFIC_EOI = 0xa0;
/** R=1 SL=1: set priority, level L becomes the lowest. */
export const OCW2_SET_PRIORITY = 0xc0;
/** R=1 SL=1 EOI=1: rotate on specific EOI: clear ISR bit L, L becomes lowest. */
export const OCW2_ROTATE_SPECIFIC_EOI = 0xe0;

// ---------------------------------------------------------------- OCW3
// Command port, D4=0 D3=1 (D7 should be 0; like QEMU the model ignores it).
export const OCW3_SELECT = 0x08;
/** D0 RIS: with RR, read ISR (1) or IRR (0) on the next command-port read. */
export const OCW3_RIS = 0x01;
/** D1 RR: act on RIS. */
export const OCW3_RR = 0x02;
/** D2 P: poll command; the next read acts as an interrupt acknowledge. */
export const OCW3_POLL = 0x04;
/** D5 SMM: special mask mode value, acted on when ESMM is set. */
export const OCW3_SMM = 0x20;
/** D6 ESMM: enable the SMM bit. */
export const OCW3_ESMM = 0x40;

/** OCW3 "read IRR on the next read" (0x0A). */
export const OCW3_READ_IRR = OCW3_SELECT | OCW3_RR;
/** OCW3 "read ISR on the next read" (0x0B). */
export const OCW3_READ_ISR = OCW3_SELECT | OCW3_RR | OCW3_RIS;
/** OCW3 poll (0x0C). */
export const OCW3_POLL_CMD = OCW3_SELECT | OCW3_POLL;
/** OCW3 set special mask mode (0x68). */
export const OCW3_SET_SMM = OCW3_SELECT | OCW3_ESMM | OCW3_SMM;
/** OCW3 reset special mask mode (0x48). */
export const OCW3_CLEAR_SMM = OCW3_SELECT | OCW3_ESMM;

/** Poll word (datasheet "Poll Command"): bit 7 I = a request was acknowledged, bits 2–0 its level. */
export const POLL_INT = 0x80;
export const POLL_LEVEL_MASK = 0x07;

/** True for a command-port byte that is ICW1. */
export function isIcw1(value: number): boolean {
  return (value & ICW1_INIT) !== 0;
}

/** True for a command-port byte that is OCW3 (D4=0, D3=1). */
export function isOcw3(value: number): boolean {
  return (value & ICW1_INIT) === 0 && (value & OCW3_SELECT) !== 0;
}

/** True for a command-port byte that is OCW2 (D4=0, D3=0). */
export function isOcw2(value: number): boolean {
  return (value & (ICW1_INIT | OCW3_SELECT)) === 0;
}

/**
 * The priority resolver: the best priority (0 = highest) among the levels in
 * `mask`, where level `priorityAdd` has priority 0 and priority grows with the
 * level modulo 8 (datasheet "Automatic Rotation"/"Specific Rotation": after
 * rotation the level that was serviced becomes priority 7). Returns 8 when
 * `mask` is empty. QEMU's get_priority() computes the same.
 */
export function bestPriority(mask: number, priorityAdd: number): number {
  if ((mask & 0xff) === 0) return 8;
  let p = 0;
  while ((mask & (1 << ((p + priorityAdd) & 7))) === 0) p++;
  return p;
}

/** The IR level holding priority `priority` under rotation `priorityAdd`. */
export function levelOfPriority(priority: number, priorityAdd: number): number {
  return (priority + priorityAdd) & 7;
}

/**
 * OCW2 "set priority" byte that makes `level` the highest priority:
 * the level below it becomes the lowest (priority_add = L + 1).
 */
export function ocw2MakeHighest(level: number): number {
  return OCW2_SET_PRIORITY | ((level + 7) & 7);
}
