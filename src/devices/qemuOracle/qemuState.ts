/**
 * QEMU's saved 8254/8259 state, keyed exactly by the VMState field names of
 * "i8254" (version 3, hw/timer/i8254_common.c) and "i8259" (version 1,
 * hw/intc/i8259_common.c), decoded from a migration stream.
 *
 * Encodings worth knowing when comparing with a model (they are QEMU's):
 * - PIT `count` is the reload value, 1..0x10000 (a written 0 is 0x10000).
 * - PIT `read_state`, `write_state` and `count_latched` use QEMU's
 *   RW_STATE_* numbers: 1 LSB, 2 MSB, 3 WORD0 (LSB next), 4 WORD1 (MSB next);
 *   `count_latched` is 0 when nothing is latched. `rw_mode` is the control
 *   word's RW field (1..3; 0 only before any control word).
 * - PIT times (`count_load_time`, `next_transition_time`) are ns of QEMU's
 *   virtual clock, which stands still in a machine started with -S (see
 *   README); -1 means "no transition".
 * - PIC `single_mode` is ICW1 & 0x02, so 0 or 2 (not 0 or 1).
 */
import { BaremigError } from '../../errors.js';
import type { DecodedSection, MigrationStream, VmValue } from './migrationStream.js';

export const PIT_CHANNEL_FIELDS = [
  'count',
  'latched_count',
  'count_latched',
  'status_latched',
  'status',
  'read_state',
  'write_state',
  'write_latch',
  'rw_mode',
  'mode',
  'bcd',
  'gate',
  'count_load_time',
  'next_transition_time',
] as const;

export type QemuPitChannelState = Record<(typeof PIT_CHANNEL_FIELDS)[number], number>;

/** VMState "i8254" v3: top-level field names are QEMU's, dots and brackets included. */
export interface QemuPitState {
  /** Channel 0's IRQ is suppressed (HPET legacy mode); 0 on a plain pc machine. */
  'channels[0].irq_disabled': number;
  channels: [QemuPitChannelState, QemuPitChannelState, QemuPitChannelState];
  /** Saved a second time at the end of the section ("formerly irq_timer"). */
  'channels[0].next_transition_time': number;
}

export const PIC_FIELDS = [
  'last_irr',
  'irr',
  'imr',
  'isr',
  'priority_add',
  'irq_base',
  'read_reg_select',
  'poll',
  'special_mask',
  'init_state',
  'auto_eoi',
  'rotate_on_auto_eoi',
  'special_fully_nested_mode',
  'init4',
  'single_mode',
  'elcr',
] as const;

/**
 * VMState "i8259" v1, one chip. `ltim` appears only with QEMU versions that
 * have the "i8259/ltim" subsection, and only when ICW1 set LTIM.
 */
export type QemuPicChipState = Record<(typeof PIC_FIELDS)[number], number> & { ltim?: number };

export interface QemuPicState {
  /** Ports 0x20/0x21, ELCR 0x4D0; section instance 0. */
  master: QemuPicChipState;
  /** Ports 0xA0/0xA1, ELCR 0x4D1; section instance 1. */
  slave: QemuPicChipState;
}

export interface QemuDeviceState {
  pit: QemuPitState;
  pic: QemuPicState;
}

function fail(message: string): never {
  throw new BaremigError('DEVICE', `QEMU saved state: ${message}`);
}

function num(v: VmValue | undefined, what: string): number {
  if (typeof v !== 'number') fail(`${what} is ${v === undefined ? 'missing' : 'not an integer'}`);
  return v;
}

function pickNumbers<K extends string>(fields: Record<string, VmValue>, names: readonly K[], what: string): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const n of names) out[n] = num(fields[n], `${what}.${n}`);
  return out;
}

export function pitStateFromSection(s: DecodedSection): QemuPitState {
  if (s.vmsd_name !== 'i8254') fail(`section ${s.idstr} is ${s.vmsd_name}, not i8254`);
  const channels = s.fields['channels'];
  if (!Array.isArray(channels) || channels.length !== 3) fail('i8254.channels is not an array of 3');
  const decoded = channels.map((c, i) => {
    if (typeof c !== 'object' || c === null || c instanceof Uint8Array || Array.isArray(c)) fail(`i8254.channels[${i}] is not a struct`);
    return pickNumbers(c.fields, PIT_CHANNEL_FIELDS, `i8254.channels[${i}]`);
  });
  return {
    'channels[0].irq_disabled': num(s.fields['channels[0].irq_disabled'], 'i8254.channels[0].irq_disabled'),
    channels: [decoded[0]!, decoded[1]!, decoded[2]!],
    'channels[0].next_transition_time': num(s.fields['channels[0].next_transition_time'], 'i8254.channels[0].next_transition_time'),
  };
}

export function picChipStateFromSection(s: DecodedSection): QemuPicChipState {
  if (s.vmsd_name !== 'i8259') fail(`section ${s.idstr} is ${s.vmsd_name}, not i8259`);
  const chip: QemuPicChipState = pickNumbers(s.fields, PIC_FIELDS, `i8259#${s.instance_id}`);
  const ltim = s.subsections['i8259/ltim'];
  if (ltim) chip.ltim = num(ltim.fields['ltim'], `i8259#${s.instance_id}/ltim.ltim`);
  return chip;
}

/** The PIT (instance 0) and both PICs (instance 0 master, 1 slave) of a pc machine's stream. */
export function deviceStateFromStream(stream: MigrationStream): QemuDeviceState {
  return {
    pit: pitStateFromSection(stream.section('i8254', 0)),
    pic: {
      master: picChipStateFromSection(stream.section('i8259', 0)),
      slave: picChipStateFromSection(stream.section('i8259', 1)),
    },
  };
}
