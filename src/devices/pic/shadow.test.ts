import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PicChipInternal } from './model.js';
import { decodeIcw, initialPicShadow, isPicShadow, reducePicShadow, type PicChipShadow, type PicShadow } from './shadow.js';
import { PicNode, applyGuestOp, guestScriptArb } from './testHarness.js';

/** The chip fields the shadow claims to know, in the model's terms. */
function shadowView(c: PicChipShadow): Partial<PicChipInternal> {
  const cfg = decodeIcw(c.icw);
  return {
    imr: c.imr,
    isr: c.isr,
    priority_add: c.priorityAdd,
    irq_base: cfg.irqBase,
    read_reg_select: c.readRegSelect,
    poll: c.poll,
    special_mask: c.specialMask,
    init_state: cfg.initState,
    auto_eoi: cfg.autoEoi,
    rotate_on_auto_eoi: c.rotateOnAutoEoi,
    special_fully_nested_mode: cfg.specialFullyNested,
    init4: cfg.init4,
    single_mode: cfg.singleMode,
    ltim: cfg.ltim,
  };
}

function modelView(c: PicChipInternal): Partial<PicChipInternal> {
  const v: Partial<PicChipInternal> = {};
  for (const k of Object.keys(shadowView(initialPicShadow().master)) as Array<keyof PicChipInternal>) v[k] = c[k];
  return v;
}

const out = (port: number, value: number, size: 1 | 2 | 4 = 1) => ({ dir: 'out' as const, port, size, value });
const inp = (port: number, value: number) => ({ dir: 'in' as const, port, size: 1 as const, value });
const fold = (s: PicShadow, ...as: Parameters<typeof reducePicShadow>[1][]) => as.reduce(reducePicShadow, s);

describe('8259 shadow reducer', () => {
  it('follows every hidden field it keeps, after every guest access and acknowledge (property)', () => {
    let steps = 0;
    fc.assert(
      fc.property(guestScriptArb, (ops) => {
        const n = new PicNode();
        for (const op of ops) {
          applyGuestOp(n, op);
          steps++;
          const m = n.pic.inspect();
          expect(shadowView(n.shadow.master)).toEqual(modelView(m.master));
          expect(shadowView(n.shadow.slave)).toEqual(modelView(m.slave));
        }
        expect(isPicShadow(JSON.parse(JSON.stringify(n.shadow)))).toBe(true);
      }),
      { numRuns: 5_000 },
    );
    expect(steps).toBeGreaterThan(50_000);
  });

  it('starts as a reset chip: ICW1 0x10, ICW2 0, ICW3 0, complete', () => {
    const s = initialPicShadow();
    expect(decodeIcw(s.master.icw)).toMatchObject({ initState: 0, irqBase: 0, init4: 0, singleMode: 0, ltim: 0, autoEoi: 0, consumed: 3 });
    expect(isPicShadow(s)).toBe(true);
  });

  it('keeps the ICW sequence since the last ICW1, bounded to four bytes', () => {
    let s = fold(initialPicShadow(), out(0x20, 0x11), out(0x21, 0x20), out(0x21, 0x04));
    expect(s.master.icw).toEqual([0x11, 0x20, 0x04]);
    expect(decodeIcw(s.master.icw).initState).toBe(3);
    s = fold(s, out(0x21, 0x03), out(0x21, 0xfb), out(0x21, 0xfa));
    expect(s.master.icw).toEqual([0x11, 0x20, 0x04, 0x03]);
    expect(s.master.imr).toBe(0xfa); // after the sequence the data port is OCW1
    expect(decodeIcw(s.master.icw)).toMatchObject({ initState: 0, irqBase: 0x20, autoEoi: 1 });
    // Single mode without ICW4: ICW1 + ICW2 only.
    s = fold(s, out(0xa0, 0x12), out(0xa1, 0x70), out(0xa1, 0x55));
    expect(s.slave.icw).toEqual([0x12, 0x70]);
    expect(s.slave.imr).toBe(0x55);
    // ICW1 starts over and clears IMR, ISR, rotation and the OCW state.
    s = fold(s, out(0x20, 0xc3), out(0x20, 0x6b), out(0x20, 0x80), out(0x20, 0x10));
    expect(s.master).toEqual({ icw: [0x10], imr: 0, isr: 0, priorityAdd: 0, readRegSelect: 0, specialMask: 0, poll: 0, rotateOnAutoEoi: 0 });
  });

  it('derives rotation from set priority, specific rotation, and non-specific rotation over the followed ISR', () => {
    let s = fold(initialPicShadow(), out(0x20, 0x11), out(0x21, 0x08), out(0x21, 0x04), out(0x21, 0x01));
    s = fold(s, out(0x20, 0xc4)); // IRQ4 lowest
    expect(s.master.priorityAdd).toBe(5);
    s = fold(s, { dir: 'inta', master: 0x86 }, { dir: 'inta', master: 0x81 });
    expect(s.master.isr).toBe(0x42);
    // Priority order is 5,6,7,0,1,...: the highest in service is IRQ6.
    s = fold(s, out(0x20, 0xa0));
    expect(s.master.isr).toBe(0x02);
    expect(s.master.priorityAdd).toBe(7);
    s = fold(s, out(0x20, 0xe1));
    expect(s.master.isr).toBe(0);
    expect(s.master.priorityAdd).toBe(2);
    // With nothing in service a rotating EOI changes nothing.
    expect(fold(s, out(0x20, 0xa0))).toEqual(s);
  });

  it('rotates on acknowledges in automatic-EOI mode only when rotate-in-AEOI is set', () => {
    let s = fold(initialPicShadow(), out(0x20, 0x11), out(0x21, 0x08), out(0x21, 0x04), out(0x21, 0x03));
    s = fold(s, { dir: 'inta', master: 0x83 });
    expect(s.master).toMatchObject({ isr: 0, priorityAdd: 0 });
    s = fold(s, out(0x20, 0x80), { dir: 'inta', master: 0x83 });
    expect(s.master).toMatchObject({ isr: 0, priorityAdd: 4, rotateOnAutoEoi: 1 });
    s = fold(s, out(0x20, 0x00), { dir: 'inta', master: 0x85 });
    expect(s.master).toMatchObject({ priorityAdd: 4, rotateOnAutoEoi: 0 });
  });

  it('treats a cascade acknowledge and a default IR7 as the chips do', () => {
    let s = fold(initialPicShadow(), out(0x20, 0x11), out(0x21, 0x08), out(0x21, 0x04), out(0x21, 0x01));
    s = fold(s, out(0xa0, 0x11), out(0xa1, 0x70), out(0xa1, 0x02), out(0xa1, 0x01));
    s = fold(s, { dir: 'inta', master: 0x82, slave: 0x83 });
    expect([s.master.isr, s.slave.isr]).toEqual([0x04, 0x08]);
    s = fold(s, { dir: 'inta', master: 0x82, slave: 0 }); // spurious IRQ15: master IS2 only
    expect([s.master.isr, s.slave.isr]).toEqual([0x04, 0x08]);
    expect(fold(s, { dir: 'inta', master: 0 })).toEqual(s); // spurious IRQ7
  });

  it('consumes an armed poll on the next read of either port; re-synchronises ISR and IMR on guest reads', () => {
    let s = fold(initialPicShadow(), out(0x20, 0x0c));
    expect(s.master.poll).toBe(1);
    s = fold(s, inp(0x21, 0x85));
    expect(s.master).toMatchObject({ poll: 0, isr: 0x20, imr: 0 });
    s = fold(s, out(0x20, 0x0c), inp(0x20, 0x00));
    expect(s.master).toMatchObject({ poll: 0, isr: 0x20 });
    s = fold(s, out(0x20, 0x0b), inp(0x20, 0x81), inp(0x21, 0x3c));
    expect(s.master).toMatchObject({ isr: 0x81, imr: 0x3c, readRegSelect: 1 });
    // An IRR read teaches nothing.
    expect(fold(s, out(0x20, 0x0a), inp(0x20, 0xff)).master.isr).toBe(0x81);
  });

  it('in special mask mode a non-specific EOI skips masked IS bits, as the chip does', () => {
    let s = fold(initialPicShadow(), out(0x20, 0x11), out(0x21, 0x08), out(0x21, 0x04), out(0x21, 0x01));
    s = fold(s, { dir: 'inta', master: 0x83 }, { dir: 'inta', master: 0x81 }, out(0x21, 0x02), out(0x20, 0x68), out(0x20, 0x20));
    expect(s.master.isr).toBe(0x02);
    s = fold(s, out(0x20, 0x48), out(0x20, 0x20));
    expect(s.master.isr).toBe(0);
  });

  it('splits wide accesses into byte cycles and ignores the ELCR and foreign ports', () => {
    const s = fold(initialPicShadow(), out(0x20, 0xff11, 2));
    // 0x20 ← 0x11 (ICW1), 0x21 ← 0xff (ICW2)
    expect(s.master.icw).toEqual([0x11, 0xff]);
    const before = initialPicShadow();
    expect(fold(before, out(0x4d0, 0x20), out(0x43, 0x34), inp(0x60, 1))).toBe(before);
  });

  it('is pure', () => {
    const s = initialPicShadow();
    const copy = structuredClone(s);
    fold(s, out(0x20, 0x11), out(0x21, 0x20), { dir: 'inta', master: 0x80 }, out(0x20, 0xa0), out(0x21, 0xff));
    expect(s).toEqual(copy);
  });

  it('rejects malformed shadows from the wire', () => {
    const good = initialPicShadow();
    expect(isPicShadow(good)).toBe(true);
    expect(isPicShadow({ ...good, master: { ...good.master, icw: [0x08] } })).toBe(false); // not ICW1
    expect(isPicShadow({ ...good, master: { ...good.master, icw: [0x10, 0, 0, 0] } })).toBe(false); // byte past the end
    expect(isPicShadow({ ...good, slave: { ...good.slave, priorityAdd: 9 } })).toBe(false);
    expect(isPicShadow({ ...good, slave: { ...good.slave, poll: true } })).toBe(false);
    expect(isPicShadow(null)).toBe(false);
  });
});
