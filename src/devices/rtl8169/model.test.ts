import { describe, expect, it } from 'vitest';
import {
  Bmcr,
  ChipCmd,
  Cfg9346,
  Desc,
  Dtccr,
  Intr,
  Mii,
  PhyStatus,
  Phyar,
  Reg,
  RxCfg,
  TxCfg,
  TxPoll,
  decodeTally,
  ethernetFcs,
  multicastHashBit,
} from './registers.js';
import { TCTR_TICK_NS } from './model.js';
import { GUEST_MAC, type NicNode, makeNicNode } from './testbed.js';

const TX = 0x10000;
const RX = 0x20000;
const HP = 0x30000;
const BUF = 0x40000;

function w(n: NicNode, off: number, size: 1 | 2 | 4, v: number) {
  n.nic.mmioWrite(off, size, v);
}
function r(n: NicNode, off: number, size: 1 | 2 | 4) {
  return n.nic.mmioRead(off, size);
}
function desc(n: NicNode, at: number, opts1: number, addr: number) {
  n.mem.write32(at + 4, 0);
  n.mem.write32(at + 8, addr);
  n.mem.write32(at + 12, 0);
  n.mem.write32(at, opts1 >>> 0);
}
/** A node with link up, rings at TX/RX, TX+RX enabled, accepting my MAC + broadcast. */
function ready(opts: Parameters<typeof makeNicNode>[0] = {}): NicNode {
  const n = makeNicNode(opts);
  n.clock.advance(200_000);
  n.nic.advanceTo(n.clock.nowNs());
  w(n, Reg.TNPDS_LO, 4, TX);
  w(n, Reg.THPDS_LO, 4, HP);
  w(n, Reg.RDSAR_LO, 4, RX);
  w(n, Reg.CHIPCMD, 1, ChipCmd.TxEnb | ChipCmd.RxEnb);
  w(n, Reg.RXCONFIG, 4, RxCfg.AcceptMyPhys | RxCfg.AcceptBroadcast);
  w(n, Reg.INTRSTATUS, 2, 0xffff);
  return n;
}
function frame(dst: number[], len: number, fill = 0xab): Uint8Array {
  const f = new Uint8Array(len).fill(fill);
  f.set(dst, 0);
  return f;
}
function armRx(n: NicNode, count: number, size = 2048, eorAt = count - 1) {
  for (let i = 0; i < count; i++) desc(n, RX + 16 * i, Desc.OWN | size | (i === eorAt ? Desc.EOR : 0), BUF + 0x1000 * i);
}

describe('RTL8169 model: identity and configuration registers', () => {
  it('loads IDR from the EEPROM; IDR writes need Cfg9346 unlocked; auto-load reloads', () => {
    const n = makeNicNode();
    expect([0, 1, 2, 3, 4, 5].map((i) => r(n, i, 1))).toEqual(GUEST_MAC);
    w(n, Reg.IDR0, 4, 0x44332211);
    expect(r(n, Reg.IDR0, 4)).toBe(0x12005452);
    w(n, Reg.CFG9346, 1, Cfg9346.Unlock);
    w(n, Reg.IDR0, 4, 0x44332211);
    w(n, Reg.IDR4, 2, 0x6655);
    expect(r(n, Reg.IDR0, 4)).toBe(0x44332211);
    expect(r(n, Reg.IDR4, 4)).toBe(0x6655); // 0x06/0x07 reserved, read 0
    w(n, Reg.CFG9346, 1, Cfg9346.AutoLoad);
    expect(r(n, Reg.CFG9346, 1)).toBe(0);
    expect([0, 1, 2, 3, 4, 5].map((i) => r(n, i, 1))).toEqual(GUEST_MAC);
  });

  it('Config0-5 change only unlocked and only in writable bits', () => {
    const n = makeNicNode();
    const c1 = r(n, Reg.CONFIG1, 1);
    w(n, Reg.CONFIG1, 1, c1 | 0x20);
    expect(r(n, Reg.CONFIG1, 1)).toBe(c1);
    w(n, Reg.CFG9346, 1, Cfg9346.Unlock);
    w(n, Reg.CONFIG1, 1, 0xff);
    expect(r(n, Reg.CONFIG1, 1)).toBe(0xf3 | (c1 & 0x0c));
    w(n, Reg.CONFIG0, 1, 0xff);
    expect(r(n, Reg.CONFIG0, 1)).toBe(0);
  });

  it('TxConfig hardware-ID bits are read-only (8169S), others as written', () => {
    const n = makeNicNode();
    expect((r(n, Reg.TXCONFIG, 4) >>> 20) & 0xfcf).toBe(0x008);
    w(n, Reg.TXCONFIG, 4, 0xffffffff);
    expect(r(n, Reg.TXCONFIG, 4)).toBe((TxCfg.HwId8169S | TxCfg.Writable) >>> 0);
    w(n, Reg.RXCONFIG, 4, 0xffffffff);
    expect(r(n, Reg.RXCONFIG, 4)).toBe(RxCfg.Writable);
  });

  it('MAR, ring bases, CPlusCmd, RxMaxSize, IntrMitigate, MulIntr are plain R/W; unknown offsets read 0', () => {
    const n = makeNicNode();
    w(n, Reg.MAR0, 4, 0x12345678);
    w(n, Reg.MAR4, 4, 0x9abcdef0);
    w(n, Reg.TNPDS_LO, 4, 0x1100);
    w(n, Reg.RDSAR_HI, 4, 7);
    w(n, Reg.CPLUSCMD, 2, 0x402b);
    w(n, Reg.RXMAXSIZE, 2, 16384);
    w(n, Reg.INTRMITIGATE, 2, 0x5100);
    w(n, Reg.MULINTR, 2, 0xf00f);
    expect([r(n, Reg.MAR0, 4), r(n, Reg.MAR4, 4), r(n, Reg.TNPDS_LO, 4), r(n, Reg.RDSAR_HI, 4)]).toEqual([0x12345678, 0x9abcdef0, 0x1100, 7]);
    expect([r(n, Reg.CPLUSCMD, 2), r(n, Reg.RXMAXSIZE, 2), r(n, Reg.INTRMITIGATE, 2), r(n, Reg.MULINTR, 2)]).toEqual([0x402b, 16384, 0x5100, 0xf00f]);
    w(n, 0x80, 4, 0xffffffff);
    expect(r(n, 0x80, 4)).toBe(0);
    expect(r(n, Reg.TXPOLL, 1)).toBe(0);
  });
});

describe('RTL8169 model: reset and interrupts', () => {
  it('CmdReset zeroes indices, IntrMask, IntrStatus and enables; keeps IDR, MAR, ring bases; self-clears', () => {
    const n = ready({ resetNs: 5000 });
    armRx(n, 4);
    n.nic.receiveFrame(frame(GUEST_MAC, 64));
    w(n, Reg.MAR0, 4, 0xdeadbeef);
    w(n, Reg.INTRMASK, 2, 0xffff);
    expect(n.nic.inspect().rxIndex).toBe(1);
    w(n, Reg.CHIPCMD, 1, ChipCmd.Reset);
    expect(r(n, Reg.CHIPCMD, 1) & ChipCmd.Reset).toBe(ChipCmd.Reset);
    n.clock.advance(5000);
    expect(r(n, Reg.CHIPCMD, 1)).toBe(0);
    const s = n.nic.inspect();
    expect([s.txIndex, s.rxIndex, s.hpqIndex, s.regs.intrMask, s.regs.intrStatus, s.regs.chipCmd]).toEqual([0, 0, 0, 0, 0, 0]);
    expect(s.regs.mar[0]).toBe(0xef);
    expect(s.regs.rdsar[0]).toBe(RX);
    expect(s.regs.idr).toEqual(GUEST_MAC);
    expect(n.irq.level).toBe(false);
  });

  it('IntrStatus is write-1-to-clear and the line is (IntrStatus & IntrMask) != 0, level', () => {
    const n = ready();
    w(n, Reg.TXPOLL, 1, TxPoll.FSWInt);
    expect(r(n, Reg.INTRSTATUS, 2)).toBe(Intr.SWInt);
    expect(n.irq.level).toBe(false);
    w(n, Reg.INTRMASK, 2, Intr.SWInt);
    expect(n.irq.level).toBe(true);
    w(n, Reg.INTRSTATUS, 2, Intr.RxOK); // other bit: no effect
    expect(n.irq.level).toBe(true);
    w(n, Reg.INTRSTATUS, 2, Intr.SWInt);
    expect(r(n, Reg.INTRSTATUS, 2)).toBe(0);
    expect(n.irq.level).toBe(false);
    w(n, Reg.TXPOLL, 1, TxPoll.FSWInt);
    expect(n.irq.level).toBe(true);
    w(n, Reg.INTRMASK, 2, 0);
    expect(n.irq.level).toBe(false);
  });
});

describe('RTL8169 model: TX ring walk', () => {
  it('sends owned descriptors in order, pads to 60, clears only OWN, wraps on EOR, stops at the first unowned', () => {
    const n = ready();
    n.mem.writeBytes(BUF, frame([2, 0, 0, 0, 0, 1], 20, 1));
    n.mem.writeBytes(BUF + 0x100, frame([2, 0, 0, 0, 0, 2], 100, 2));
    desc(n, TX + 0, Desc.OWN | Desc.FS | Desc.LS | 20, BUF);
    desc(n, TX + 16, Desc.OWN | Desc.FS | Desc.LS | Desc.EOR | 100, BUF + 0x100);
    w(n, Reg.TXPOLL, 1, TxPoll.NPQ);
    expect(n.wire.map((f) => f.length)).toEqual([60, 100]);
    expect(Array.from(n.wire[0]!.subarray(20))).toEqual(new Array(40).fill(0));
    expect(n.mem.read32(TX)).toBe(Desc.FS | Desc.LS | 20);
    expect(n.mem.read32(TX + 16)).toBe((Desc.FS | Desc.LS | Desc.EOR | 100) >>> 0);
    expect(n.nic.inspect().txIndex).toBe(0); // wrapped after EOR, slot 0 unowned
    expect(r(n, Reg.INTRSTATUS, 2)).toBe(Intr.TxOK | Intr.TxDescUnavail);
    expect(n.nic.inspect().tally.txOk).toBe(2);
  });

  it('gathers FS..LS into one frame; a frame cut by an unowned descriptor is left for a later poll', () => {
    const n = ready();
    n.mem.writeBytes(BUF, new Uint8Array(30).fill(7));
    n.mem.writeBytes(BUF + 0x100, new Uint8Array(40).fill(8));
    desc(n, TX, Desc.OWN | Desc.FS | 30, BUF);
    w(n, Reg.TXPOLL, 1, TxPoll.NPQ);
    expect(n.wire).toHaveLength(0);
    expect(n.nic.inspect().txIndex).toBe(0);
    expect((n.mem.read32(TX) & Desc.OWN) >>> 0).toBe(Desc.OWN >>> 0);
    desc(n, TX + 16, Desc.OWN | Desc.LS | 40, BUF + 0x100);
    w(n, Reg.TXPOLL, 1, TxPoll.NPQ);
    expect(n.wire).toHaveLength(1);
    expect(n.wire[0]!.length).toBe(70);
    expect(n.nic.inspect().txIndex).toBe(2);
  });

  it('does nothing without TxEnb; HPQ walks its own ring with its own index', () => {
    const n = ready();
    w(n, Reg.CHIPCMD, 1, ChipCmd.RxEnb);
    desc(n, TX, Desc.OWN | Desc.FS | Desc.LS | 60, BUF);
    w(n, Reg.TXPOLL, 1, TxPoll.NPQ);
    expect(n.wire).toHaveLength(0);
    expect(r(n, Reg.INTRSTATUS, 2)).toBe(0);
    w(n, Reg.CHIPCMD, 1, ChipCmd.TxEnb | ChipCmd.RxEnb);
    desc(n, HP, Desc.OWN | Desc.FS | Desc.LS | 60, BUF);
    w(n, Reg.TXPOLL, 1, TxPoll.HPQ);
    const s = n.nic.inspect();
    expect([s.hpqIndex, s.txIndex, n.wire.length]).toEqual([1, 0, 1]);
  });

  it('MAC loopback (TxConfig 18:17 = 01): frames come back into RX and never reach the wire; wire RX is cut off', () => {
    const n = ready();
    armRx(n, 4);
    w(n, Reg.TXCONFIG, 4, 0x03000700 | TxCfg.LoopbackMac);
    n.mem.writeBytes(BUF + 0x8000, frame(GUEST_MAC, 64, 5));
    desc(n, TX, Desc.OWN | Desc.FS | Desc.LS | 64, BUF + 0x8000);
    w(n, Reg.TXPOLL, 1, TxPoll.NPQ);
    expect(n.wire).toHaveLength(0);
    expect(n.nic.inspect().rxIndex).toBe(1);
    expect(n.mem.read32(RX) & Desc.RxLenMask).toBe(68);
    n.nic.receiveFrame(frame(GUEST_MAC, 64));
    expect(n.nic.inspect().rxIndex).toBe(1);
  });

  it('DMA outside RAM raises SysErr and stops', () => {
    const n = ready();
    desc(n, TX, Desc.OWN | Desc.FS | Desc.LS | 60, 0x7fff_0000);
    w(n, Reg.TXPOLL, 1, TxPoll.NPQ);
    expect(r(n, Reg.INTRSTATUS, 2) & Intr.SysErr).toBe(Intr.SysErr);
    expect(n.wire).toHaveLength(0);
  });
});

describe('RTL8169 model: RX', () => {
  it('writes data + FCS, then status (OWN cleared, EOR kept, FS|LS, length incl. CRC), advances, wraps on EOR', () => {
    const n = ready();
    armRx(n, 2);
    const f = frame(GUEST_MAC, 100, 9);
    n.nic.receiveFrame(f);
    n.nic.receiveFrame(f);
    expect(n.mem.read32(RX)).toBe((Desc.FS | Desc.LS | Desc.RxPAM | 104) >>> 0);
    expect(n.mem.read32(RX + 16)).toBe((Desc.EOR | Desc.FS | Desc.LS | Desc.RxPAM | 104) >>> 0);
    expect(Array.from(n.mem.readBytes(BUF, 100))).toEqual(Array.from(f));
    expect(n.mem.read32(BUF + 100)).toBe(ethernetFcs(f));
    expect(n.nic.inspect().rxIndex).toBe(0);
    expect(r(n, Reg.INTRSTATUS, 2)).toBe(Intr.RxOK);
  });

  it('a full ring (unowned descriptor) drops the frame: RxMissed+1, RxDescUnavail, no advance; RxMissed write clears', () => {
    const n = ready();
    armRx(n, 1);
    n.nic.receiveFrame(frame(GUEST_MAC, 64));
    const status0 = n.mem.read32(RX);
    n.nic.receiveFrame(frame(GUEST_MAC, 64, 1));
    n.nic.receiveFrame(frame(GUEST_MAC, 64, 2));
    expect(n.mem.read32(RX)).toBe(status0);
    expect(r(n, Reg.RXMISSED, 4)).toBe(2);
    expect(r(n, Reg.INTRSTATUS, 2)).toBe(Intr.RxOK | Intr.RxDescUnavail);
    expect(n.nic.inspect().rxIndex).toBe(0);
    w(n, Reg.RXMISSED, 4, 0x1234);
    expect(r(n, Reg.RXMISSED, 4)).toBe(0);
  });

  it('a frame larger than one buffer spans descriptors FS..LS', () => {
    const n = ready();
    armRx(n, 4, 64);
    n.nic.receiveFrame(frame(GUEST_MAC, 150));
    expect(n.nic.inspect().rxIndex).toBe(3);
    expect(n.mem.read32(RX) & (Desc.FS | Desc.LS)).toBe(Desc.FS);
    expect(n.mem.read32(RX + 32) & (Desc.FS | Desc.LS)).toBe(Desc.LS);
    expect(n.mem.read32(RX + 32) & Desc.RxLenMask).toBe(154);
  });

  it('accept filter: APM, AB, AM by hash, AAP, runts need AR', () => {
    const n = ready();
    armRx(n, 16);
    const group = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
    const bit = multicastHashBit(Uint8Array.from(group));
    const got = () => n.nic.inspect().rxIndex;
    n.nic.receiveFrame(frame([2, 9, 9, 9, 9, 9], 64));
    expect(got()).toBe(0);
    n.nic.receiveFrame(frame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 64));
    expect(got()).toBe(1);
    n.nic.receiveFrame(frame(group, 64));
    expect(got()).toBe(1);
    w(n, Reg.RXCONFIG, 4, RxCfg.AcceptMyPhys | RxCfg.AcceptMulticast);
    n.nic.receiveFrame(frame(group, 64));
    expect(got()).toBe(1); // hash bit not set
    w(n, bit < 32 ? Reg.MAR0 : Reg.MAR4, 4, 1 << (bit & 31));
    n.nic.receiveFrame(frame(group, 64));
    expect(got()).toBe(2);
    expect(n.mem.read32(RX + 16) & Desc.RxMAR).toBe(Desc.RxMAR);
    n.nic.receiveFrame(frame(GUEST_MAC, 40));
    expect(got()).toBe(2);
    w(n, Reg.RXCONFIG, 4, RxCfg.AcceptMyPhys | RxCfg.AcceptRunt | RxCfg.AcceptAllPhys);
    n.nic.receiveFrame(frame(GUEST_MAC, 40));
    n.nic.receiveFrame(frame([2, 9, 9, 9, 9, 9], 64));
    expect(got()).toBe(4);
  });

  it('RxMaxSize drops longer frames as RX errors; RxEnb off ignores frames', () => {
    const n = ready();
    armRx(n, 4);
    w(n, Reg.RXMAXSIZE, 2, 100);
    n.nic.receiveFrame(frame(GUEST_MAC, 97));
    expect(r(n, Reg.INTRSTATUS, 2)).toBe(Intr.RxErr);
    n.nic.receiveFrame(frame(GUEST_MAC, 96));
    expect(n.nic.inspect().rxIndex).toBe(1);
    w(n, Reg.CHIPCMD, 1, ChipCmd.TxEnb);
    n.nic.receiveFrame(frame(GUEST_MAC, 64));
    expect(n.nic.inspect().rxIndex).toBe(1);
    expect(r(n, Reg.RXMISSED, 4)).toBe(0);
  });
});

describe('RTL8169 model: timer, tally, PHY', () => {
  it('TCTR counts at 30 ns, a write restarts it; TimeOut fires when TCTR reaches TimerInt', () => {
    const n = ready();
    w(n, Reg.TCTR, 4, 12345);
    n.clock.advance(3000);
    expect(r(n, Reg.TCTR, 4)).toBe(3000 / TCTR_TICK_NS);
    w(n, Reg.TIMERINT, 4, 200);
    expect(n.nic.nextEventNs()).toBe(n.clock.nowNs() - 3000 + 200 * TCTR_TICK_NS);
    n.clock.advance(2999);
    n.nic.advanceTo(n.clock.nowNs());
    expect(r(n, Reg.INTRSTATUS, 2) & Intr.TimeOut).toBe(0);
    n.clock.advance(1);
    expect(r(n, Reg.INTRSTATUS, 2) & Intr.TimeOut).toBe(Intr.TimeOut);
    w(n, Reg.INTRSTATUS, 2, Intr.TimeOut);
    n.clock.advance(1_000_000);
    expect(r(n, Reg.INTRSTATUS, 2) & Intr.TimeOut).toBe(0); // next crossing only after the 2^32 wrap
    w(n, Reg.TCTR, 4, 1);
    n.clock.advance(200 * TCTR_TICK_NS);
    expect(r(n, Reg.INTRSTATUS, 2) & Intr.TimeOut).toBe(Intr.TimeOut);
  });

  it('DTCCR Cmd dumps 64 bytes of tally counters to the 64-byte aligned address and clears Cmd', () => {
    const n = ready();
    armRx(n, 4);
    n.nic.receiveFrame(frame(GUEST_MAC, 64));
    n.nic.receiveFrame(frame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 64));
    desc(n, TX, Desc.OWN | Desc.FS | Desc.LS | 60, BUF);
    w(n, Reg.TXPOLL, 1, TxPoll.NPQ);
    w(n, Reg.DTCCR_HI, 4, 0);
    w(n, Reg.DTCCR_LO, 4, 0x50040 | Dtccr.Cmd);
    expect(r(n, Reg.DTCCR_LO, 4)).toBe(0x50040);
    const t = decodeTally(n.mem.readBytes(0x50040, 64));
    expect(t).toMatchObject({ txOk: 1, rxOk: 2, rxUnicast: 1, rxBroadcast: 1, rxMissed: 0 });
  });

  it('autonegotiation: link up after autonegNs with LinkChg and PHYstatus; restart drops the link', () => {
    const n = makeNicNode({ autonegNs: 1000 });
    expect(r(n, Reg.PHYSTATUS, 1)).toBe(0);
    expect(n.nic.nextEventNs()).toBe(1000);
    n.clock.advance(1000);
    expect(r(n, Reg.PHYSTATUS, 1)).toBe(PhyStatus.LinkSts | PhyStatus.M1000 | PhyStatus.FullDup);
    expect(r(n, Reg.INTRSTATUS, 2)).toBe(Intr.LinkChg);
    w(n, Reg.INTRSTATUS, 2, 0xffff);
    // Advertise 100 only: renegotiates to 100 full.
    w(n, Reg.PHYAR, 4, Phyar.Flag | (Mii.GBCR << 16) | 0);
    w(n, Reg.PHYAR, 4, Phyar.Flag | (Mii.BMCR << 16) | Bmcr.AnEnable | Bmcr.AnRestart);
    expect(r(n, Reg.PHYSTATUS, 1)).toBe(0);
    expect(r(n, Reg.INTRSTATUS, 2)).toBe(Intr.LinkChg);
    n.clock.advance(1000);
    expect(r(n, Reg.PHYSTATUS, 1)).toBe(PhyStatus.LinkSts | PhyStatus.M100 | PhyStatus.FullDup);
    // BMCR reads back without the self-clearing bit.
    w(n, Reg.PHYAR, 4, Mii.BMCR << 16);
    expect(r(n, Reg.PHYAR, 4)).toBe((Phyar.Flag | (Mii.BMCR << 16) | Bmcr.AnEnable) >>> 0);
    // Pulling the cable.
    n.nic.setLinkPartner(null);
    expect(r(n, Reg.PHYSTATUS, 1)).toBe(0);
  });

  it('PHYAR with access time: Flag stays until done (write clears it, read sets it)', () => {
    const n = makeNicNode({ autonegNs: 1000, phyAccessNs: 20_000 });
    n.clock.advance(1000);
    w(n, Reg.PHYAR, 4, Phyar.Flag | (Mii.ANAR << 16) | 0x01e1);
    expect((r(n, Reg.PHYAR, 4) & Phyar.Flag) >>> 0).toBe(Phyar.Flag >>> 0);
    n.clock.advance(20_000);
    expect(r(n, Reg.PHYAR, 4)).toBe((Mii.ANAR << 16) | 0x01e1);
    w(n, Reg.PHYAR, 4, Mii.PHYID1 << 16);
    expect(r(n, Reg.PHYAR, 4) & Phyar.Flag).toBe(0);
    n.clock.advance(20_000);
    expect(r(n, Reg.PHYAR, 4)).toBe((Phyar.Flag | (Mii.PHYID1 << 16) | 0x001c) >>> 0);
  });

  it('a PHY reset returns the registers to defaults and renegotiates', () => {
    const n = makeNicNode({ autonegNs: 1000 });
    n.clock.advance(1000);
    w(n, Reg.PHYAR, 4, Phyar.Flag | (Mii.ANAR << 16) | 0x0021);
    w(n, Reg.PHYAR, 4, Phyar.Flag | (Mii.BMCR << 16) | Bmcr.Reset);
    w(n, Reg.PHYAR, 4, Mii.ANAR << 16);
    expect(r(n, Reg.PHYAR, 4) & 0xffff).toBe(0x01e1);
    expect(n.nic.inspect().phy.linkUp).toBe(false);
    n.clock.advance(1000);
    expect(n.nic.inspect().phy.linkUp).toBe(true);
  });
});
