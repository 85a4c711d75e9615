import { describe, expect, it } from 'vitest';
import type { GuestContext } from '../../sim/guest/context.js';
import type { RtlDriver } from './driverCommon.js';
import { createBsdReDriver } from './driverBsd.js';
import { createLinuxR8169Driver } from './driverLinux.js';
import { Desc, Intr, Mii, Reg } from './registers.js';
import { GUEST_MAC, GuestCpu, NIC_MMIO, PEER_MAC, makeNicNode, parseTagged, taggedFrame } from './testbed.js';

const BASE = 0x100000;

type Personality = 'linux' | 'bsd';
function setup(p: Personality, txRing: number, rxRing: number) {
  const node = makeNicNode();
  const received: Uint8Array[] = [];
  const onReceive = (_ctx: GuestContext, f: Uint8Array) => received.push(f);
  const driver: RtlDriver = p === 'linux' ? createLinuxR8169Driver({ onReceive }) : createBsdReDriver({ onReceive });
  driver.boot(node.ctx, BASE, { mmioBase: NIC_MMIO, txRing, rxRing });
  const cpu = new GuestCpu(node, driver, BASE);
  cpu.settle();
  return { node, driver, cpu, received };
}

describe.each(['linux', 'bsd'] as const)('%s personality', (p) => {
  it('boots: link up, rings programmed, TX/RX enabled, interrupts unmasked, LinkChg handled', () => {
    const { node, driver } = setup(p, 16, 16);
    const s = node.nic.inspect();
    const rings = driver.rings(node.ctx, BASE);
    expect(s.phy.linkUp).toBe(true);
    expect(s.regs.tnpds[0]).toBe(rings.txRing);
    expect(s.regs.rdsar[0]).toBe(rings.rxRing);
    expect(s.regs.chipCmd).toBe(0x0c);
    expect(s.regs.intrMask).not.toBe(0);
    expect(s.regs.intrStatus & Intr.LinkChg).toBe(0);
    expect(s.regs.idr).toEqual(GUEST_MAC);
    expect(rings.txRing % 256).toBe(0);
    expect(rings.rxRing % 256).toBe(0);
  });

  it.each([
    [5, 7],
    [16, 16],
    [13, 300],
  ])('sends and receives in order across many ring wraps (TX %i, RX %i)', (nTx, nRx) => {
    const { node, driver, cpu, received } = setup(p, nTx, nRx);
    const sent: number[] = [];
    let seq = 0;
    for (let round = 0; round < 40; round++) {
      for (let k = 0; k < 3; k++) {
        const f = taggedFrame(PEER_MAC, GUEST_MAC, 'GST', seq, 60 + (seq % 50));
        if (driver.send(node.ctx, BASE, f, k < 2)) sent.push(seq);
        seq++;
      }
      driver.flush(node.ctx, BASE);
      for (let k = 0; k < 4; k++) node.nic.receiveFrame(taggedFrame(GUEST_MAC, PEER_MAC, 'PEER', round * 4 + k, 64 + k));
      cpu.settle();
    }
    expect(node.wire.map((f) => parseTagged(f)?.seq)).toEqual(sent);
    expect(sent.length).toBeGreaterThan(60);
    expect(received.map((f) => parseTagged(f)?.seq)).toEqual(Array.from({ length: 160 }, (_, i) => i));
    expect(driver.stats(node.ctx, BASE).txPackets).toBe(sent.length);
  });

  it('refuses frames when the TX ring is full and resumes after reaping', () => {
    const { node, driver, cpu } = setup(p, 8, 8);
    // Hold the doorbell: nothing completes, the ring fills.
    let accepted = 0;
    for (let i = 0; i < 20; i++) if (driver.send(node.ctx, BASE, taggedFrame(PEER_MAC, GUEST_MAC, 'GST', i, 60), true)) accepted++;
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(8);
    driver.flush(node.ctx, BASE);
    cpu.settle();
    expect(node.wire).toHaveLength(accepted);
    expect(driver.send(node.ctx, BASE, taggedFrame(PEER_MAC, GUEST_MAC, 'GST', 99, 60))).toBe(true);
  });
});

describe('personality differences', () => {
  it('Linux zeroes reaped TX descriptors; FreeBSD leaves the NIC status in place', () => {
    for (const p of ['linux', 'bsd'] as const) {
      const { node, driver, cpu } = setup(p, 8, 8);
      driver.send(node.ctx, BASE, taggedFrame(PEER_MAC, GUEST_MAC, 'GST', 1, 80));
      cpu.settle();
      const { txRing } = driver.rings(node.ctx, BASE);
      const opts1 = node.mem.read32(txRing);
      if (p === 'linux') expect(opts1).toBe(0);
      else expect(opts1).toBe((Desc.FS | Desc.LS | 80) >>> 0);
    }
  });

  it('Linux masks all in the handler and acks what it read; FreeBSD masks in the filter and acks in the task', () => {
    const lx = setup('linux', 8, 8);
    lx.node.nic.receiveFrame(taggedFrame(GUEST_MAC, PEER_MAC, 'PEER', 0, 64));
    expect(lx.node.irq.level).toBe(true);
    lx.cpu.interruptOnce();
    let s = lx.node.nic.inspect();
    expect([s.regs.intrMask, s.regs.intrStatus]).toEqual([0, 0]);
    lx.cpu.run();
    expect(lx.node.nic.inspect().regs.intrMask).not.toBe(0);

    const bsd = setup('bsd', 8, 8);
    bsd.node.nic.receiveFrame(taggedFrame(GUEST_MAC, PEER_MAC, 'PEER', 0, 64));
    bsd.cpu.interruptOnce();
    s = bsd.node.nic.inspect();
    expect(s.regs.intrMask).toBe(0);
    expect(s.regs.intrStatus & Intr.RxOK).toBe(Intr.RxOK); // not acked by the filter
    bsd.cpu.stepOnce();
    s = bsd.node.nic.inspect();
    expect(s.regs.intrStatus & Intr.RxOK).toBe(0);
    expect(bsd.received).toHaveLength(1);
  });

  it('FreeBSD with TX moderation reaps on TimeOut (TimerInt/TCTR), not TxOK', () => {
    const { node, driver, cpu } = setup('bsd', 8, 8);
    expect(node.nic.inspect().regs.timerInt).toBe(0x800);
    expect(node.nic.inspect().regs.intrMask & Intr.TxOK).toBe(0);
    driver.send(node.ctx, BASE, taggedFrame(PEER_MAC, GUEST_MAC, 'GST', 1, 80));
    cpu.run();
    expect(driver.stats(node.ctx, BASE).txPackets).toBe(0);
    cpu.settle();
    expect(driver.stats(node.ctx, BASE).txPackets).toBe(1);
  });

  it('the PHY writes of boot reach the shadow (Linux: 1000 full only, FreeBSD: with half)', () => {
    const lx = setup('linux', 8, 8);
    const bsd = setup('bsd', 8, 8);
    expect(lx.node.shadow.value.phy[Mii.GBCR]).toBe(0x0200);
    expect(bsd.node.shadow.value.phy[Mii.GBCR]).toBe(0x0300);
    expect(lx.node.shadow.value.phyOrder.at(-1)).toBe(Mii.BMCR);
    expect(lx.node.shadow.value.dumps).toBe(1);
    expect(bsd.node.nic.inspect().regs.config[1]! & 0x20).toBe(0); // DRVLOAD written while locked: ignored
    expect(bsd.node.nic.mmioRead(Reg.INTRMITIGATE, 2)).toBe(0x5100);
  });
});
