import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PicPair } from './model.js';
import { PicNode, guestScriptArb, applyGuestOp } from './testHarness.js';

/** A pair initialised the PC way: vectors 0x20 (master) and 0x28 (slave), ICW4 as given. */
function pcPair(icw4 = 0x01, onIntr?: (l: boolean) => void): PicPair {
  const p = new PicPair(onIntr ? { onIntr } : {});
  for (const [port, v] of [
    [0x20, 0x11],
    [0x21, 0x20],
    [0x21, 0x04],
    [0x21, icw4],
    [0xa0, 0x11],
    [0xa1, 0x28],
    [0xa1, 0x02],
    [0xa1, icw4 & ~0x10],
  ] as const) {
    p.portWrite(port, 1, v);
  }
  return p;
}
const w = (p: PicPair, port: number, v: number) => p.portWrite(port, 1, v);
const r = (p: PicPair, port: number) => p.portRead(port, 1);
const irr = (p: PicPair, cmd = 0x20) => (w(p, cmd, 0x0a), r(p, cmd));
const isr = (p: PicPair, cmd = 0x20) => (w(p, cmd, 0x0b), r(p, cmd));

describe('8259 pair: initialisation', () => {
  it('comes out of reset with every field cleared and the PIIX ELCR masks', () => {
    const s = new PicPair().inspect();
    expect(s.master).toEqual({
      last_irr: 0, irr: 0, imr: 0, isr: 0, priority_add: 0, irq_base: 0, read_reg_select: 0, poll: 0, special_mask: 0,
      init_state: 0, auto_eoi: 0, rotate_on_auto_eoi: 0, special_fully_nested_mode: 0, init4: 0, single_mode: 0, elcr: 0, ltim: 0, elcr_mask: 0xf8,
    });
    expect(s.slave.elcr_mask).toBe(0xde);
  });

  it('steps through ICW2, ICW3, ICW4 as ICW1 asks (cascade/single × IC4)', () => {
    const seq = (icw1: number, data: number[]) => {
      const p = new PicPair();
      w(p, 0x20, icw1);
      const states = [p.inspect().master.init_state];
      for (const d of data) {
        w(p, 0x21, d);
        states.push(p.inspect().master.init_state);
      }
      return { states, m: p.inspect().master };
    };
    expect(seq(0x11, [0x2f, 0x04, 0x13]).states).toEqual([1, 2, 3, 0]);
    expect(seq(0x11, [0x2f, 0x04, 0x13]).m).toMatchObject({ irq_base: 0x28, init4: 1, single_mode: 0, auto_eoi: 1, special_fully_nested_mode: 1, imr: 0 });
    expect(seq(0x10, [0x08, 0x04]).states).toEqual([1, 2, 0]);
    expect(seq(0x13, [0x08, 0x01]).states).toEqual([1, 3, 0]);
    expect(seq(0x12, [0x08]).states).toEqual([1, 0]);
    expect(seq(0x1a, [0x08]).m).toMatchObject({ ltim: 1, single_mode: 1 });
  });

  it('ICW1 clears IMR, ISR, rotation, special mask, read select, poll and ICW4 modes', () => {
    const p = pcPair(0x03);
    w(p, 0x21, 0x5a);
    w(p, 0x20, 0xc3);
    w(p, 0x20, 0x6b);
    w(p, 0x20, 0x80);
    w(p, 0x20, 0x0c);
    w(p, 0x20, 0x10);
    expect(p.inspect().master).toMatchObject({ imr: 0, isr: 0, priority_add: 0, special_mask: 0, read_reg_select: 0, poll: 0, auto_eoi: 0, rotate_on_auto_eoi: 0, init_state: 1, irq_base: 0 });
  });

  it('data-port writes are ICWs while initialising and OCW1 afterwards', () => {
    const p = new PicPair();
    w(p, 0x20, 0x11);
    w(p, 0x21, 0x20);
    expect(p.inspect().master.imr).toBe(0);
    w(p, 0x21, 0x04);
    w(p, 0x21, 0x01);
    w(p, 0x21, 0xfe);
    expect(r(p, 0x21)).toBe(0xfe);
  });
});

describe('8259 pair: requests, edge and level', () => {
  it('edge: a rising line requests, a held line does not again, masking does not stop the latch', () => {
    const p = pcPair();
    w(p, 0x21, 0x01);
    p.setIrq(0, true);
    expect(irr(p)).toBe(0x01);
    expect(p.intr()).toBe(false); // masked
    w(p, 0x21, 0x00);
    expect(p.intr()).toBe(true);
    expect(p.acknowledge()).toBe(0x20);
    expect(irr(p)).toBe(0x00); // edge request consumed
    expect(isr(p)).toBe(0x01);
    w(p, 0x20, 0x20);
    p.setIrq(0, true); // still high: no new edge
    expect(p.intr()).toBe(false);
    p.setIrq(0, false);
    p.setIrq(0, true);
    expect(p.intr()).toBe(true);
  });

  it('edge: a line that falls before the acknowledge withdraws its request (datasheet; QEMU latches it) → spurious IRQ7', () => {
    const p = pcPair();
    p.setIrq(5, true);
    expect(p.intr()).toBe(true);
    p.setIrq(5, false);
    expect(irr(p)).toBe(0);
    expect(p.intr()).toBe(false);
    expect(p.acknowledgeCycle()).toEqual({ vector: 0x27, master: 0 });
    expect(isr(p)).toBe(0); // no IS bit for the default IR7
  });

  it('level (ELCR): IRR follows the line, an acknowledge leaves it, it requests again after EOI while high', () => {
    const p = pcPair();
    w(p, 0x4d0, 0x20);
    p.setIrq(5, true);
    expect(p.acknowledge()).toBe(0x25);
    expect(irr(p)).toBe(0x20);
    expect(p.intr()).toBe(false); // blocked by its own IS bit
    w(p, 0x20, 0x20);
    expect(p.intr()).toBe(true);
    p.setIrq(5, false);
    expect(irr(p)).toBe(0);
    expect(p.intr()).toBe(false);
  });

  it('ELCR keeps only the PIIX-settable bits and is read back, also as a 16-bit word', () => {
    const p = new PicPair();
    p.portWrite(0x4d0, 2, 0xffff);
    expect(p.portRead(0x4d0, 2)).toBe(0xdef8);
    expect(r(p, 0x4d1)).toBe(0xde);
  });

  it('a line switched to level sensing reports its level at once', () => {
    const p = pcPair();
    p.setIrq(3, true);
    p.acknowledge();
    w(p, 0x20, 0x20);
    expect(irr(p)).toBe(0);
    w(p, 0x4d0, 0x08);
    expect(irr(p)).toBe(0x08);
  });

  it('LTIM makes every input level sensed, IRQ0 included', () => {
    const p = new PicPair();
    p.setIrq(0, true);
    w(p, 0x20, 0x19);
    w(p, 0x21, 0x08);
    w(p, 0x21, 0x04);
    w(p, 0x21, 0x01);
    expect(irr(p)).toBe(0x01); // kept through ICW1: level sensed
    p.acknowledge();
    expect(irr(p)).toBe(0x01);
  });

  it('ICW1 resets the edge sense: an input already high must go low and high again', () => {
    const p = pcPair();
    p.setIrq(4, true);
    expect(irr(p)).toBe(0x10);
    w(p, 0x20, 0x11);
    w(p, 0x21, 0x20);
    w(p, 0x21, 0x04);
    w(p, 0x21, 0x01);
    expect(irr(p)).toBe(0);
    expect(p.inspect().master.last_irr & 0x10).toBe(0x10);
    p.setIrq(4, true);
    expect(irr(p)).toBe(0);
    p.setIrq(4, false);
    p.setIrq(4, true);
    expect(irr(p)).toBe(0x10);
  });

  it('refuses IRQ2 (the cascade) and out-of-range lines', () => {
    const p = new PicPair();
    expect(() => p.setIrq(2, true)).toThrow(RangeError);
    expect(() => p.setIrq(16, true)).toThrow(RangeError);
    expect(() => p.setIrq(-1, true)).toThrow(RangeError);
  });
});

describe('8259 pair: priority, nesting, EOI', () => {
  it('fully nested: higher levels interrupt lower ones in service, equal and lower wait', () => {
    const p = pcPair();
    p.setIrq(4, true);
    expect(p.acknowledge()).toBe(0x24);
    p.setIrq(6, true);
    expect(p.intr()).toBe(false);
    p.setIrq(1, true);
    expect(p.acknowledge()).toBe(0x21);
    expect(isr(p)).toBe(0x12);
    w(p, 0x20, 0x20); // non-specific EOI ends IRQ1, the highest
    expect(isr(p)).toBe(0x10);
    expect(p.intr()).toBe(false);
    w(p, 0x20, 0x64); // specific EOI for IRQ4
    expect(isr(p)).toBe(0);
    expect(p.acknowledge()).toBe(0x26);
  });

  it('cascade: a slave request goes through master IR2 and both IS bits are set', () => {
    const p = pcPair();
    p.setIrq(12, true);
    expect(p.intr()).toBe(true);
    expect(p.acknowledgeCycle()).toEqual({ vector: 0x2c, master: 0x82, slave: 0x84 });
    expect(isr(p)).toBe(0x04);
    expect(isr(p, 0xa0)).toBe(0x10);
    // The slave blocks its lower levels and the master blocks IR3–7.
    p.setIrq(3, true);
    p.setIrq(13, true);
    expect(p.intr()).toBe(false);
    p.setIrq(9, true);
    expect(p.intr()).toBe(false); // slave INT rises, but master IS2 blocks IR2
    p.setIrq(1, true);
    expect(p.acknowledge()).toBe(0x21);
  });

  it('special fully nested mode lets a higher slave level through while master IS2 is set', () => {
    const p = pcPair(0x11);
    p.setIrq(12, true);
    expect(p.acknowledge()).toBe(0x2c);
    p.setIrq(9, true);
    expect(p.intr()).toBe(true);
    expect(p.acknowledgeCycle()).toEqual({ vector: 0x29, master: 0x82, slave: 0x81 });
    expect(isr(p, 0xa0)).toBe(0x12);
  });

  it('spurious IRQ15: the slave request goes away inside the INTA cycle; master IS2 stays set', () => {
    const p = pcPair();
    p.setIrq(10, true);
    const ack = p.acknowledgeCycle(() => p.setIrq(10, false));
    expect(ack).toEqual({ vector: 0x2f, master: 0x82, slave: 0 });
    expect(isr(p)).toBe(0x04);
    expect(isr(p, 0xa0)).toBe(0);
  });

  it('single mode: IR2 is an ordinary input, the master answers with its own vector (datasheet; QEMU cascades)', () => {
    const p = new PicPair();
    w(p, 0x20, 0x13);
    w(p, 0x21, 0x40);
    w(p, 0x21, 0x01);
    p.setIrq(11, true);
    expect(p.acknowledgeCycle()).toEqual({ vector: 0x42, master: 0x82 });
    expect(isr(p, 0xa0)).toBe(0);
  });

  it('automatic EOI sets no IS bit; rotate-in-AEOI makes the serviced level the lowest', () => {
    const p = pcPair(0x03);
    p.setIrq(3, true);
    expect(p.acknowledge()).toBe(0x23);
    expect(isr(p)).toBe(0);
    expect(p.inspect().master.priority_add).toBe(0);
    w(p, 0x20, 0x80);
    p.setIrq(5, true);
    p.acknowledge();
    expect(p.inspect().master).toMatchObject({ priority_add: 6, rotate_on_auto_eoi: 1, isr: 0 });
    w(p, 0x20, 0x00);
    p.setIrq(7, true);
    p.acknowledge();
    expect(p.inspect().master.priority_add).toBe(6);
  });

  it('set priority moves the whole priority order', () => {
    const p = pcPair();
    w(p, 0x20, 0xc4); // IRQ4 lowest: order 5,6,7,0,1,2,3,4
    expect(p.inspect().master.priority_add).toBe(5);
    p.setIrq(3, true);
    p.setIrq(6, true);
    expect(p.acknowledge()).toBe(0x26); // 6 beats 3 under this rotation
    p.setIrq(0, true);
    expect(p.intr()).toBe(false); // 0 is below 6 now
    p.setIrq(5, true);
    expect(p.acknowledge()).toBe(0x25); // 5 is the highest and nests
    expect(isr(p)).toBe(0x60);
  });

  it('rotation order decides nesting and which IS bit a non-specific EOI ends', () => {
    const p = pcPair();
    w(p, 0x20, 0xc5); // priority 6,7,0,1,2,3,4,5
    p.setIrq(0, true);
    p.acknowledge();
    p.setIrq(7, true);
    expect(p.acknowledge()).toBe(0x27); // 7 outranks 0 now
    expect(isr(p)).toBe(0x81);
    w(p, 0x20, 0xa0); // rotate on non-specific EOI: ends 7 (highest in service), 7 becomes lowest
    expect(isr(p)).toBe(0x01);
    expect(p.inspect().master.priority_add).toBe(0);
    w(p, 0x20, 0xe0); // rotate on specific EOI 0
    expect(isr(p)).toBe(0);
    expect(p.inspect().master.priority_add).toBe(1);
    w(p, 0x20, 0x40); // no operation
    expect(p.inspect().master.priority_add).toBe(1);
  });

  it('special mask mode: a masked level in service no longer holds off lower ones', () => {
    const p = pcPair();
    p.setIrq(3, true);
    p.acknowledge();
    p.setIrq(5, true);
    expect(p.intr()).toBe(false);
    w(p, 0x21, 0x08);
    w(p, 0x20, 0x68);
    expect(p.intr()).toBe(true);
    expect(p.acknowledge()).toBe(0x25);
    expect(isr(p)).toBe(0x28);
    // Datasheet: a non-specific EOI does not clear a masked IS bit in special mask mode (QEMU does).
    w(p, 0x20, 0x20);
    expect(isr(p)).toBe(0x08);
    w(p, 0x20, 0x20);
    expect(isr(p)).toBe(0x08);
    w(p, 0x20, 0x63);
    expect(isr(p)).toBe(0);
    w(p, 0x20, 0x48);
    expect(p.inspect().master.special_mask).toBe(0);
  });
});

describe('8259 pair: poll mode and reads', () => {
  it('poll: the next read of either port returns 0x80|level and acknowledges; 0 when nothing', () => {
    const p = pcPair();
    w(p, 0x20, 0x0c);
    expect(r(p, 0x20)).toBe(0);
    expect(p.inspect().master.poll).toBe(0);
    p.setIrq(6, true);
    p.setIrq(4, true);
    w(p, 0x20, 0x0c);
    expect(r(p, 0x21)).toBe(0x84);
    expect(isr(p)).toBe(0x10);
    expect(irr(p)).toBe(0x40);
    w(p, 0x20, 0x0c);
    expect(r(p, 0x20)).toBe(0); // 6 is below 4 in service
    w(p, 0xa0, 0x0c);
    expect(r(p, 0xa0)).toBe(0);
  });

  it('read_reg_select persists; IMR on the data port', () => {
    const p = pcPair();
    p.setIrq(1, true);
    p.acknowledge();
    p.setIrq(3, true);
    w(p, 0x20, 0x0b);
    expect(r(p, 0x20)).toBe(0x02);
    expect(r(p, 0x20)).toBe(0x02);
    w(p, 0x20, 0x08); // OCW3 without RR keeps the selection
    expect(r(p, 0x20)).toBe(0x02);
    w(p, 0x20, 0x0a);
    expect(r(p, 0x20)).toBe(0x08);
    w(p, 0x21, 0xa5);
    expect(r(p, 0x21)).toBe(0xa5);
  });

  it('splits wide port accesses into byte cycles', () => {
    const p = pcPair();
    p.portWrite(0x20, 2, 0x3c0b); // 0x20 ← OCW3 read ISR, 0x21 ← IMR 0x3c
    expect(p.inspect().master).toMatchObject({ read_reg_select: 1, imr: 0x3c });
    expect(p.portRead(0x20, 2)).toBe(0x3c00);
  });
});

describe('8259 pair: INTR output', () => {
  it('reports INTR changes through onIntr', () => {
    const seen: boolean[] = [];
    const p = pcPair(0x01, (l) => seen.push(l));
    p.setIrq(3, true);
    p.acknowledge();
    w(p, 0x20, 0x20);
    expect(seen).toEqual([true, false]);
    w(p, 0x4d0, 0x08);
    expect(seen).toEqual([true, false, true]);
  });

  it('reset clears both chips and the ELCR but not the lines', () => {
    const p = pcPair();
    w(p, 0x4d0, 0x08);
    p.setIrq(3, true);
    p.reset();
    const s = p.inspect();
    expect(s.master).toMatchObject({ irr: 0, elcr: 0, irq_base: 0, last_irr: 0x08 });
    expect(p.intr()).toBe(false);
  });
});

describe('8259 pair: invariants (property)', () => {
  it('IRR follows level inputs, holds no request without its input, and master IR2 is the slave INT', () => {
    const bestPriority = (mask: number, pa: number) => {
      for (let q = 0; q < 8; q++) if (mask & (1 << ((q + pa) & 7))) return q;
      return 8;
    };
    fc.assert(
      fc.property(guestScriptArb, (ops) => {
        const n = new PicNode();
        for (const op of ops) {
          applyGuestOp(n, op);
          const { master, slave } = n.pic.inspect();
          for (const c of [master, slave]) {
            const level = c.ltim ? 0xff : c.elcr;
            expect(c.irr & level).toBe(c.last_irr & level);
            expect(c.irr & ~c.last_irr).toBe(0);
            expect(c.elcr & ~c.elcr_mask).toBe(0);
          }
          expect(master.last_irr & 0xfb).toBe(n.lines & 0xfb);
          expect(slave.last_irr).toBe(n.lines >> 8);
          const sp = bestPriority(slave.irr & ~slave.imr, slave.priority_add);
          let inService = slave.isr;
          if (slave.special_mask) inService &= ~slave.imr;
          const slaveInt = sp < 8 && sp < bestPriority(inService, slave.priority_add);
          expect((master.last_irr >> 2) & 1).toBe(slaveInt ? 1 : 0);
        }
      }),
      { numRuns: 1_000 },
    );
  });
});
