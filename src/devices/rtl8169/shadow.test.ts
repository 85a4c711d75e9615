import { describe, expect, it } from 'vitest';
import { Bmcr, ChipCmd, Dtccr, Mii, Phyar, Reg, TxPoll } from './registers.js';
import { RTL_SHADOW_KEY, type RtlMmioAccess, initialRtlShadow, reduceRtlShadow, rtlShadowFrom } from './shadow.js';

const wr = (offset: number, size: 1 | 2 | 4, value: number): RtlMmioAccess => ({ kind: 'mmioWrite', offset, size, value });
const phyw = (reg: number, v: number) => wr(Reg.PHYAR, 4, (Phyar.Flag | (reg << 16) | v) >>> 0);
const fold = (acc: RtlMmioAccess[]) => acc.reduce((s, a) => reduceRtlShadow(s, a), initialRtlShadow());

describe('RTL8169 shadow reducer', () => {
  it('keeps the last value per PHY register in replay order, without self-clearing BMCR bits', () => {
    const s = fold([phyw(Mii.ANAR, 0x01e1), phyw(Mii.GBCR, 0x0200), phyw(Mii.BMCR, Bmcr.AnEnable | Bmcr.AnRestart), phyw(Mii.ANAR, 0x05e1)]);
    expect(s.phy[Mii.ANAR]).toBe(0x05e1);
    expect(s.phy[Mii.BMCR]).toBe(Bmcr.AnEnable);
    expect(s.phyOrder).toEqual([Mii.GBCR, Mii.BMCR, Mii.ANAR]);
    expect(s.phyWrites).toBe(4);
  });

  it('a PHY reset forgets earlier writes; PHY reads are not writes', () => {
    const s = fold([phyw(Mii.ANAR, 0x21), phyw(Mii.BMCR, Bmcr.Reset), wr(Reg.PHYAR, 4, Mii.BMSR << 16), phyw(Mii.GBCR, 0)]);
    expect(s.phy[Mii.ANAR]).toBeNull();
    expect(s.phyOrder).toEqual([Mii.GBCR]);
    expect(s.phyar).toBe((Phyar.Flag | (Mii.GBCR << 16)) >>> 0);
  });

  it('assembles PHYAR from byte writes: the command starts with byte 3', () => {
    const s = fold([wr(Reg.PHYAR, 2, 0x1234), wr(Reg.PHYAR + 2, 1, Mii.ANAR), wr(Reg.PHYAR + 3, 1, 0x80)]);
    expect(s.phy[Mii.ANAR]).toBe(0x1234);
  });

  it('records resets, TxPoll kinds (HPQ since reset) and DTCCR dumps; reads change nothing', () => {
    let s = fold([wr(Reg.TXPOLL, 1, TxPoll.HPQ | TxPoll.NPQ), wr(Reg.TXPOLL, 1, TxPoll.FSWInt), wr(Reg.DTCCR_HI, 4, 0), wr(Reg.DTCCR_LO, 4, 0x1040 | Dtccr.Cmd)]);
    expect(s.txPoll).toEqual({ npq: 1, hpq: 1, fswint: 1, hpqSinceReset: true });
    expect(s.dtccr).toEqual([0x1040 | Dtccr.Cmd, 0]);
    expect(s.dumps).toBe(1);
    s = reduceRtlShadow(s, wr(Reg.CHIPCMD, 1, ChipCmd.Reset));
    expect(s.resets).toBe(1);
    expect(s.txPoll.hpqSinceReset).toBe(false);
    expect(reduceRtlShadow(s, { kind: 'mmioRead', offset: Reg.PHYAR, size: 4, value: 0xffffffff })).toBe(s);
  });

  it('is pure, bounded and JSON-serializable', () => {
    const s0 = initialRtlShadow();
    const frozen = JSON.stringify(s0);
    let s = s0;
    for (let i = 0; i < 5000; i++) s = reduceRtlShadow(s, phyw(i % 32, i & 0xffff));
    expect(JSON.stringify(s0)).toBe(frozen);
    expect(s.phyOrder.length).toBeLessThanOrEqual(32);
    expect(s.phy).toHaveLength(32);
    const round = JSON.parse(JSON.stringify(s));
    expect(round).toEqual(s);
    expect(rtlShadowFrom({ [RTL_SHADOW_KEY]: round })).toEqual(s);
    expect(rtlShadowFrom({ [`${RTL_SHADOW_KEY}:nic1`]: round }, 'nic1')).toEqual(s);
    expect(rtlShadowFrom({ other: 1 })).toBeNull();
    expect(rtlShadowFrom({ [RTL_SHADOW_KEY]: { v: 2 } })).toBeNull();
  });
});
