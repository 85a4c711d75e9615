/**
 * The stream reader on hand-built streams (no QEMU needed): compressed and
 * per-index arrays, nested structs, subsections, signed values, footers,
 * and the failure modes (bad magic, stream still being written, a header
 * that is not followed by its footer).
 */
import { describe, expect, it } from 'vitest';
import { isBaremigError } from '../../errors.js';
import { type VmDesc, type VmDescDevice, isIncompleteStreamError, parseMigrationStream } from './migrationStream.js';
import { deviceStateFromStream } from './qemuState.js';

class Bytes {
  private readonly parts: number[] = [];
  u8(v: number): this {
    this.parts.push(v & 0xff);
    return this;
  }
  be(v: number | bigint, n: number): this {
    let x = BigInt.asUintN(n * 8, BigInt(v));
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      out.unshift(Number(x & 0xffn));
      x >>= 8n;
    }
    this.parts.push(...out);
    return this;
  }
  str(s: string): this {
    for (const c of Buffer.from(s, 'latin1')) this.parts.push(c);
    return this;
  }
  raw(b: Iterable<number>): this {
    this.parts.push(...b);
    return this;
  }
  get length(): number {
    return this.parts.length;
  }
  done(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

interface Section {
  idstr: string;
  instance: number;
  version: number;
  sectionId: number;
  body: (b: Bytes) => void;
  footer?: boolean;
}

/** header, a fake "ram" prefix, the sections, EOF, vmdesc. */
function stream(sections: Section[], vmdesc: VmDesc, opts: { prefix?: number[] } = {}): Uint8Array {
  const b = new Bytes().be(0x5145564d, 4).be(3, 4);
  b.raw(opts.prefix ?? [0x07, 0, 0, 0, 3, 0x61, 0x62, 0x63]);
  for (const s of sections) {
    b.u8(0x04).be(s.sectionId, 4).u8(s.idstr.length).str(s.idstr).be(s.instance, 4).be(s.version, 4);
    s.body(b);
    if (s.footer !== false) b.u8(0x7e).be(s.sectionId, 4);
  }
  b.u8(0x00);
  const json = JSON.stringify(vmdesc);
  b.u8(0x06).be(json.length, 4).str(json);
  return b.done();
}

const CHANNEL_FIELDS = [
  ['count', 'int32', 4],
  ['latched_count', 'uint16', 2],
  ['count_latched', 'uint8', 1],
  ['status_latched', 'uint8', 1],
  ['status', 'uint8', 1],
  ['read_state', 'uint8', 1],
  ['write_state', 'uint8', 1],
  ['write_latch', 'uint8', 1],
  ['rw_mode', 'uint8', 1],
  ['mode', 'uint8', 1],
  ['bcd', 'uint8', 1],
  ['gate', 'uint8', 1],
  ['count_load_time', 'int64', 8],
  ['next_transition_time', 'int64', 8],
] as const;

const PIC_FIELD_NAMES = [
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
];

function pitDesc(): VmDescDevice {
  return {
    name: 'i8254',
    instance_id: 0,
    vmsd_name: 'i8254',
    version: 3,
    fields: [
      { name: 'channels[0].irq_disabled', type: 'uint32', size: 4 },
      {
        name: 'channels',
        array_len: 3,
        type: 'struct',
        size: 32,
        struct: { vmsd_name: 'pit channel', version: 2, fields: CHANNEL_FIELDS.map(([name, type, size]) => ({ name, type, size })) },
      },
      { name: 'channels[0].next_transition_time', type: 'int64', size: 8 },
    ],
  };
}

function picDesc(instance: number, ltim: boolean): VmDescDevice {
  return {
    name: 'i8259',
    instance_id: instance,
    vmsd_name: 'i8259',
    version: 1,
    fields: PIC_FIELD_NAMES.map((name) => ({ name, type: 'uint8', size: 1 })),
    ...(ltim ? { subsections: [{ vmsd_name: 'i8259/ltim', version: 1, fields: [{ name: 'ltim', type: 'uint8', size: 1 }] }] } : {}),
  };
}

function pitBody(b: Bytes): void {
  b.be(0, 4);
  for (let ch = 0; ch < 3; ch++) {
    b.be(0x10000 - ch, 4).be(0x1234 + ch, 2);
    for (let k = 0; k < 10; k++) b.u8(ch * 16 + k);
    b.be(ch === 1 ? -5 : 1000 * ch, 8).be(ch === 0 ? -1 : 27462700, 8);
  }
  b.be(-1, 8);
}

function picBody(base: number, ltim: boolean): (b: Bytes) => Bytes {
  return (b) => {
    for (let k = 0; k < 16; k++) b.u8(base + k);
    if (ltim) b.u8(0x05).u8('i8259/ltim'.length).str('i8259/ltim').be(1, 4).u8(1);
    return b;
  };
}

function pcStream(opts: { ltimOnSlave?: boolean; footer?: boolean } = {}): Uint8Array {
  const footer = opts.footer ?? true;
  return stream(
    [
      { idstr: 'i8259', instance: 0, version: 1, sectionId: 12, body: picBody(0x10, false), footer },
      { idstr: 'i8259', instance: 1, version: 1, sectionId: 13, body: picBody(0x40, !!opts.ltimOnSlave), footer },
      { idstr: 'i8254', instance: 0, version: 3, sectionId: 17, body: pitBody, footer },
    ],
    { page_size: 4096, devices: [picDesc(0, false), picDesc(1, !!opts.ltimOnSlave), pitDesc()] },
  );
}

describe('migration stream reader', () => {
  it('decodes i8254 and both i8259 sections by their vmdesc', () => {
    const s = deviceStateFromStream(parseMigrationStream(pcStream()));
    expect(s.pit['channels[0].irq_disabled']).toBe(0);
    expect(s.pit['channels[0].next_transition_time']).toBe(-1);
    expect(s.pit.channels.map((c) => c.count)).toEqual([0x10000, 0xffff, 0xfffe]);
    expect(s.pit.channels[1]).toMatchObject({
      latched_count: 0x1235,
      count_latched: 16,
      gate: 25,
      count_load_time: -5,
      next_transition_time: 27462700,
    });
    expect(s.pit.channels[0].next_transition_time).toBe(-1);
    expect(s.pic.master.last_irr).toBe(0x10);
    expect(s.pic.master.elcr).toBe(0x1f);
    expect(s.pic.slave.irr).toBe(0x41);
    expect(s.pic.slave.ltim).toBeUndefined();
  });

  it('reads subsections (i8259/ltim) and streams without section footers', () => {
    const s = deviceStateFromStream(parseMigrationStream(pcStream({ ltimOnSlave: true, footer: false })));
    expect(s.pic.slave.ltim).toBe(1);
    expect(s.pic.master.ltim).toBeUndefined();
    expect(s.pit.channels[2].count).toBe(0xfffe);
  });

  it('decodes per-index arrays, signed and unknown types', () => {
    const desc: VmDesc = {
      devices: [
        {
          name: 'thing',
          instance_id: 2,
          vmsd_name: 'thing',
          version: 4,
          fields: [
            { name: 'regs', index: 0, type: 'int16', size: 2 },
            { name: 'regs', index: 1, type: 'int16', size: 2 },
            { name: 'blob', type: 'buffer', size: 3 },
            { name: 'flag', type: 'bool', size: 1 },
            { name: 'big', type: 'uint64', size: 8 },
          ],
        },
      ],
    };
    const bytes = stream(
      [{ idstr: 'thing', instance: 2, version: 4, sectionId: 3, body: (b) => b.be(-2, 2).be(7, 2).raw([1, 2, 3]).u8(1).be(2n ** 53n + 1n, 8) }],
      desc,
    );
    // 2^53+1 has no exact JS number: the reader refuses rather than round.
    expect(() => parseMigrationStream(bytes).section('thing', 2)).toThrow(/not found/);
    const ok = stream(
      [{ idstr: 'thing', instance: 2, version: 4, sectionId: 3, body: (b) => b.be(-2, 2).be(7, 2).raw([1, 2, 3]).u8(1).be(2n ** 40n, 8) }],
      desc,
    );
    const sec = parseMigrationStream(ok).section('thing', 2);
    expect(sec.fields['regs']).toEqual([-2, 7]);
    expect(sec.fields['blob']).toEqual(Uint8Array.from([1, 2, 3]));
    expect(sec.fields['flag']).toBe(1);
    expect(sec.fields['big']).toBe(2 ** 40);
    expect(sec.section_id).toBe(3);
  });

  it('skips look-alike headers that are not followed by their footer', () => {
    // Copies of the i8259#0 header with garbage after them: one before the
    // real section (as RAM could hold), one inside a later section's buffer,
    // which a search from the end meets first.
    const fake = [0x04, 0, 0, 0, 99, 5, ...Buffer.from('i8259'), 0, 0, 0, 0, 0, 0, 0, 1, ...new Array(16).fill(0xee), 0x55];
    const ok = stream(
      [
        { idstr: 'i8259', instance: 0, version: 1, sectionId: 12, body: picBody(0x10, false) },
        { idstr: 'blob', instance: 0, version: 1, sectionId: 13, body: (b) => b.raw(fake) },
      ],
      { devices: [picDesc(0, false), { name: 'blob', instance_id: 0, vmsd_name: 'blob', version: 1, fields: [{ name: 'data', type: 'buffer', size: fake.length }] }] },
      { prefix: fake },
    );
    const parsed = parseMigrationStream(ok);
    const sec = parsed.section('i8259', 0);
    expect(sec.section_id).toBe(12);
    expect(sec.fields['imr']).toBe(0x12);
    expect(parsed.section('blob', 0).fields['data']).toEqual(Uint8Array.from(fake));
  });

  it('reports a truncated stream as incomplete, and a wrong magic or a missing section as errors', () => {
    const full = pcStream();
    for (const cut of [4, 100, full.length - 1]) {
      let err: unknown;
      try {
        parseMigrationStream(full.subarray(0, cut));
      } catch (e) {
        err = e;
      }
      expect(isIncompleteStreamError(err)).toBe(true);
    }
    const bad = full.slice();
    bad[0] = 0x51 ^ 0xff;
    expect(() => parseMigrationStream(bad)).toThrow(/bad magic/);
    let missing: unknown;
    try {
      parseMigrationStream(full).section('hpet', 0);
    } catch (e) {
      missing = e;
    }
    expect(isBaremigError(missing, 'DEVICE')).toBe(true);
    expect(String(missing)).toMatch(/no section hpet instance 0/);
  });

  it('rejects a section whose footer names another section', () => {
    const b = stream(
      [{ idstr: 'i8259', instance: 0, version: 1, sectionId: 12, body: (x) => picBody(0, false)(x).u8(0x7e).be(13, 4), footer: false }],
      { devices: [picDesc(0, false)] },
    );
    expect(() => parseMigrationStream(b).section('i8259', 0)).toThrow(/not found/);
  });
});
