/**
 * Guest driver personality 1: the habits of Linux's r8169
 * (drivers/net/ethernet/realtek/r8169_main.c) [LNX] for an RTL8169S
 * (RTL_GIGA_MAC_VER_02):
 *
 * - 64 TX / 256 RX descriptors; cur_tx, dirty_tx and cur_rx are free-running
 *   u32 counters and a slot is counter mod ring size.
 * - Post TX: buffer address and opts2 first, then opts1 = OWN|FS|LS|len
 *   (|EOR on the last slot); TxPoll NPQ unless more frames follow
 *   (xmit_more) or the queue has to stop; the queue stops when fewer than
 *   MAX_SKB_FRAGS+1 = 18 slots are free.
 * - Reap TX from dirty_tx until the first descriptor still owned, ZEROING
 *   each reaped descriptor (rtl8169_unmap_tx_skb), then kick TxPoll again if
 *   frames remain (the "8168 hack").
 * - RX: stop at the first owned descriptor; re-arm with OWN | (EOR kept) |
 *   16383 (R8169_RX_BUF_SIZE) and opts2 = 0.
 * - Interrupt: read IntrStatus; mask everything (IntrMask = 0), schedule the
 *   NAPI poll, ack by writing back exactly what was read. The poll does RX
 *   (budget 64) then TX, and unmasks when it did less than the budget.
 *
 * Everything is kept in the region (DESIGN rule 1). Ring sizes are
 * configurable for tests; with rings smaller than 64 the stop threshold
 * scales down (a quarter of the ring) so that small rings still carry frames.
 */
import type { GuestContext } from '../../sim/guest/context.js';
import {
  H,
  type ReceiveCallback,
  Regs,
  type RtlDriver,
  type RtlDriverConfig,
  checkMagic,
  checkRingSize,
  chipReset,
  macBytes,
  mdioRead,
  mdioWrite,
  multicastFilter,
  planRegion,
  regionBytesFor,
  ringsOf,
  writeDesc,
  writeHeader,
} from './driverCommon.js';
import { Anar, Bmcr, ChipCmd, Cfg9346, Desc, Dtccr, Gbcr, Intr, Mii, Reg, RxCfg, TxPoll } from './registers.js';

const MAGIC = 0x3936_3152; // "R169"
export const LINUX_NUM_TX_DESC = 64;
export const LINUX_NUM_RX_DESC = 256;
/** R8169_RX_BUF_SIZE = SZ_16K - 1: the size every RX descriptor announces. */
const RX_BUF_SIZE = 16383;
const RX_BUF_BYTES = 16384;
const TX_BUF_BYTES = 2048;
const NAPI_BUDGET = 64;
const MAX_SKB_FRAGS = 17;
/** irq_mask for VER_02..06: RxOK|RxErr|TxOK|TxErr|LinkChg|SYSErr|RxOverflow|RxFIFOOver. */
const IRQ_MASK = Intr.RxOK | Intr.RxErr | Intr.TxOK | Intr.TxErr | Intr.LinkChg | Intr.SysErr | Intr.RxDescUnavail | Intr.RxFIFOOver;
/** rtl_init_rxcfg for VER_02..06: RX_FIFO_THRESH | RX_DMA_BURST. */
const RX_CONFIG_BASE = 0x0000e700;
/** rtl_set_tx_config_registers: TX_DMA_BURST 7 << 8 | InterFrameGap 3 << 24. */
const TX_CONFIG = 0x03000700;
/** rtl_hw_start_8169: PCIMulRW, and bit 14 "MUST be 1" on VER_02/03. */
const CPLUS = 0x0008 | 0x4000;

// Private header fields (u32).
const P = {
  CUR_TX: H.PRIVATE + 0,
  DIRTY_TX: H.PRIVATE + 4,
  CUR_RX: H.PRIVATE + 8,
  IRQ_ENABLED: H.PRIVATE + 12,
  NAPI_SCHED: H.PRIVATE + 16,
  QUEUE_STOPPED: H.PRIVATE + 20,
  STOP_THRESH: H.PRIVATE + 24,
  LINK: H.PRIVATE + 28,
  TX_PACKETS: H.PRIVATE + 32,
  RX_PACKETS: H.PRIVATE + 36,
  RX_ERRORS: H.PRIVATE + 40,
  INTERRUPTS: H.PRIVATE + 44,
  RX_DROPPED: H.PRIVATE + 48,
  PHY_PENDING: H.PRIVATE + 52,
} as const;

export interface LinuxDriverOptions {
  onReceive: ReceiveCallback;
}

export function createLinuxR8169Driver(opts: LinuxDriverOptions): RtlDriver {
  const get = (ctx: GuestContext, base: number, f: number) => ctx.mem.read32(base + f);
  const set = (ctx: GuestContext, base: number, f: number, v: number) => ctx.mem.write32(base + f, v >>> 0);

  function slotsAvail(ctx: GuestContext, base: number): number {
    // dirty_tx + NUM_TX_DESC - cur_tx, in u32 arithmetic (rtl_tx_slots_avail).
    return (get(ctx, base, P.DIRTY_TX) + get(ctx, base, H.NTX) - get(ctx, base, P.CUR_TX)) >>> 0;
  }

  function doorbell(r: Regs): void {
    r.w8(Reg.TXPOLL, TxPoll.NPQ);
  }

  function irqEnable(ctx: GuestContext, base: number, r: Regs): void {
    set(ctx, base, P.IRQ_ENABLED, 1);
    r.w16(Reg.INTRMASK, IRQ_MASK);
  }

  /** rtl_rx: returns the number of descriptors handled. */
  function rx(ctx: GuestContext, base: number, budget: number): number {
    const m = ctx.mem;
    const { rxRing, nRx } = ringsOf(ctx, base);
    const bufs = get(ctx, base, H.RXBUFS);
    let cur = get(ctx, base, P.CUR_RX);
    let count = 0;
    for (let left = Math.min(budget, nRx); left > 0; left--) {
      const entry = cur % nRx;
      const at = rxRing + entry * Desc.BYTES;
      const status = m.read32(at);
      if (status & Desc.OWN) break;
      if (status & Desc.RxRES) {
        set(ctx, base, P.RX_ERRORS, get(ctx, base, P.RX_ERRORS) + 1);
      } else if ((status & (Desc.FS | Desc.LS)) !== (Desc.FS | Desc.LS)) {
        // Fragmented frames are over-MTU symptoms: dropped.
        set(ctx, base, P.RX_DROPPED, get(ctx, base, P.RX_DROPPED) + 1);
      } else {
        const size = (status & Desc.RxLenMask) - 4;
        const frame = m.readBytes(bufs + entry * RX_BUF_BYTES, Math.max(0, size));
        set(ctx, base, P.RX_PACKETS, get(ctx, base, P.RX_PACKETS) + 1);
        opts.onReceive(ctx, new Uint8Array(frame));
      }
      // release_descriptor: opts2 = 0, then rtl8169_mark_to_asic (EOR kept from the status word).
      m.write32(at + 4, 0);
      m.write32(at, (Desc.OWN | (status & Desc.EOR) | RX_BUF_SIZE) >>> 0);
      cur = (cur + 1) >>> 0;
      count++;
    }
    set(ctx, base, P.CUR_RX, cur);
    return count;
  }

  /** rtl_tx: reap until the first owned descriptor, zeroing what was reaped. */
  function tx(ctx: GuestContext, base: number, r: Regs): void {
    const m = ctx.mem;
    const { txRing, nTx } = ringsOf(ctx, base);
    const start = get(ctx, base, P.DIRTY_TX);
    const cur = get(ctx, base, P.CUR_TX);
    let dirty = start;
    let left = (cur - dirty) >>> 0;
    while (left > 0) {
      const at = txRing + (dirty % nTx) * Desc.BYTES;
      if (m.read32(at) & Desc.OWN) break;
      m.fill(at, Desc.BYTES, 0);
      set(ctx, base, P.TX_PACKETS, get(ctx, base, P.TX_PACKETS) + 1);
      dirty = (dirty + 1) >>> 0;
      left--;
    }
    if (dirty !== start) {
      set(ctx, base, P.DIRTY_TX, dirty);
      if (get(ctx, base, P.QUEUE_STOPPED) && slotsAvail(ctx, base) > get(ctx, base, P.STOP_THRESH)) set(ctx, base, P.QUEUE_STOPPED, 0);
      // "8168 hack: TxPoll requests are lost when the Tx packets are too close."
      if (cur !== dirty) doorbell(r);
    }
  }

  const driver: RtlDriver = {
    name: 'r8169',

    regionBytes(cfg: RtlDriverConfig) {
      const nTx = checkRingSize(cfg.txRing ?? LINUX_NUM_TX_DESC, 'TX');
      const nRx = checkRingSize(cfg.rxRing ?? LINUX_NUM_RX_DESC, 'RX');
      return regionBytesFor(nTx, nRx, TX_BUF_BYTES, RX_BUF_BYTES);
    },

    boot(ctx, base, cfg) {
      const nTx = checkRingSize(cfg.txRing ?? LINUX_NUM_TX_DESC, 'TX');
      const nRx = checkRingSize(cfg.rxRing ?? LINUX_NUM_RX_DESC, 'RX');
      const plan = planRegion(base, nTx, nRx, TX_BUF_BYTES, RX_BUF_BYTES);
      writeHeader(ctx, base, MAGIC, cfg.mmioBase, nTx, nRx, plan, TX_BUF_BYTES, RX_BUF_BYTES);
      set(ctx, base, P.STOP_THRESH, nTx >= LINUX_NUM_TX_DESC ? MAX_SKB_FRAGS : Math.floor(nTx / 4));
      const r = Regs.of(ctx, base);
      const m = ctx.mem;

      // Probe: the chip is reset before anything else (rtl_init_one -> rtl_hw_reset).
      chipReset(r);

      // rtl8169_init_ring: TX descriptors zeroed (coherent memory), RX filled
      // with OWN | buffer size, EOR on the last one.
      m.fill(plan.txRing, nTx * Desc.BYTES, 0);
      for (let i = 0; i < nRx; i++) {
        writeDesc(ctx, plan.rxRing + i * Desc.BYTES, Desc.OWN | RX_BUF_SIZE | (i === nRx - 1 ? Desc.EOR : 0), 0, plan.rxBufs + i * 16384);
      }

      // rtl8169_init_phy / phylib: soft reset, advertise 10/100 + pause and
      // 1000 full only (r8169 removes 1000baseT_Half), restart autonegotiation.
      mdioWrite(r, Mii.BMCR, Bmcr.Reset);
      mdioWrite(r, Mii.ANAR, Anar.A10HD | Anar.A10FD | Anar.A100HD | Anar.A100FD | Anar.Pause | 0x0001);
      mdioWrite(r, Mii.GBCR, Gbcr.A1000FD);

      // rtl_rar_set when an address is configured: unlock, MAC4 then MAC0, each read back.
      if (cfg.mac) {
        const mac = macBytes(cfg.mac);
        r.w8(Reg.CFG9346, Cfg9346.Unlock);
        r.w32(Reg.IDR4, mac[4]! | (mac[5]! << 8));
        r.r32(Reg.IDR4);
        r.w32(Reg.IDR0, mac[0]! | (mac[1]! << 8) | (mac[2]! << 16) | (mac[3]! << 24));
        r.r32(Reg.IDR0);
        r.w8(Reg.CFG9346, Cfg9346.Lock);
      }

      // rtl_hw_start: unlock, C+ command, 8169 specifics, RxMaxSize, ring
      // bases (high before low), lock, enable TX/RX before configuring them.
      r.w8(Reg.CFG9346, Cfg9346.Unlock);
      r.w16(Reg.CPLUSCMD, 0);
      r.w8(Reg.EARLYTXTHRES, 0x3f);
      r.w16(Reg.CPLUSCMD, CPLUS);
      r.w32(Reg.RXMISSED, 0);
      r.w16(Reg.INTRMITIGATE, 0);
      r.w16(Reg.RXMAXSIZE, RX_BUF_SIZE + 1);
      r.w32(Reg.TNPDS_HI, 0);
      r.w32(Reg.TNPDS_LO, plan.txRing);
      r.w32(Reg.RDSAR_HI, 0);
      r.w32(Reg.RDSAR_LO, plan.rxRing);
      r.w8(Reg.CFG9346, Cfg9346.Lock);
      r.r16(Reg.CPLUSCMD);
      r.w8(Reg.CHIPCMD, ChipCmd.TxEnb | ChipCmd.RxEnb);
      r.w32(Reg.RXCONFIG, RX_CONFIG_BASE);
      r.w32(Reg.TXCONFIG, TX_CONFIG);
      // rtl_set_rx_mode: MAR0+4 then MAR0, then the accept bits.
      let mode = RxCfg.AcceptBroadcast | RxCfg.AcceptMyPhys;
      let mc: [number, number] = [0, 0];
      if (cfg.promisc) {
        mode |= RxCfg.AcceptAllPhys | RxCfg.AcceptMulticast;
        mc = [0xffffffff, 0xffffffff];
      } else if (cfg.multicast && cfg.multicast.length > 0) {
        mode |= RxCfg.AcceptMulticast;
        mc = multicastFilter(cfg.multicast);
      }
      r.w32(Reg.MAR4, mc[1]);
      r.w32(Reg.MAR0, mc[0]);
      r.w32(Reg.RXCONFIG, (r.r32(Reg.RXCONFIG) & ~RxCfg.AcceptMask) | mode);
      irqEnable(ctx, base, r);

      // rtl8169_init_counter_offsets: one tally dump into the counters area.
      r.w32(Reg.DTCCR_HI, 0);
      r.w32(Reg.DTCCR_LO, plan.counters | Dtccr.Cmd);
      for (let i = 0; i < 1000 && r.r32(Reg.DTCCR_LO) & Dtccr.Cmd; i++);

      // phy_start: autonegotiation.
      mdioWrite(r, Mii.BMCR, Bmcr.AnEnable | Bmcr.AnRestart);
    },

    step(ctx, base) {
      checkMagic(ctx, base, MAGIC, 'r8169');
      const now = ctx.nowNs();
      const r = Regs.of(ctx, base);
      if (get(ctx, base, P.PHY_PENDING)) {
        // phylib's state machine after phy_mac_interrupt: link from BMSR, partner from LPA and STAT1000.
        set(ctx, base, P.PHY_PENDING, 0);
        const bmsr = mdioRead(r, Mii.BMSR);
        mdioRead(r, Mii.ANLPAR);
        mdioRead(r, Mii.GBSR);
        set(ctx, base, P.LINK, bmsr < 0 ? 0 : bmsr);
      }
      if (!get(ctx, base, P.NAPI_SCHED)) return now + 1e9;
      // rtl8169_poll: RX with the budget, then TX; complete and unmask when under budget.
      const work = rx(ctx, base, NAPI_BUDGET);
      tx(ctx, base, r);
      if (work < NAPI_BUDGET) {
        set(ctx, base, P.NAPI_SCHED, 0);
        irqEnable(ctx, base, r);
        return now + 1e9;
      }
      return now;
    },

    interrupt(ctx, base) {
      checkMagic(ctx, base, MAGIC, 'r8169');
      const r = Regs.of(ctx, base);
      // rtl8169_interrupt
      const status = r.r16(Reg.INTRSTATUS);
      if (!get(ctx, base, P.IRQ_ENABLED) || status === 0xffff || !(status & IRQ_MASK)) return;
      set(ctx, base, P.INTERRUPTS, get(ctx, base, P.INTERRUPTS) + 1);
      if (status & Intr.LinkChg) set(ctx, base, P.PHY_PENDING, 1); // phy_mac_interrupt
      // rtl_irq_disable, napi_schedule, then rtl_ack_events(status).
      r.w16(Reg.INTRMASK, 0);
      set(ctx, base, P.IRQ_ENABLED, 0);
      set(ctx, base, P.NAPI_SCHED, 1);
      r.w16(Reg.INTRSTATUS, status);
    },

    send(ctx, base, frame, more = false) {
      checkMagic(ctx, base, MAGIC, 'r8169');
      if (frame.length === 0 || frame.length > TX_BUF_BYTES) throw new RangeError(`frame of ${frame.length} bytes`);
      // The stack does not call ndo_start_xmit on a stopped queue.
      if (get(ctx, base, P.QUEUE_STOPPED)) return false;
      const m = ctx.mem;
      const { txRing, nTx } = ringsOf(ctx, base);
      const r = Regs.of(ctx, base);
      if (!(slotsAvail(ctx, base) > 0)) {
        set(ctx, base, P.QUEUE_STOPPED, 1);
        return false;
      }
      const cur = get(ctx, base, P.CUR_TX);
      const entry = cur % nTx;
      const at = txRing + entry * Desc.BYTES;
      if (m.read32(at) & Desc.OWN) {
        set(ctx, base, P.QUEUE_STOPPED, 1);
        return false;
      }
      const buf = get(ctx, base, H.TXBUFS) + entry * TX_BUF_BYTES;
      m.writeBytes(buf, frame);
      writeDesc(ctx, at, Desc.OWN | Desc.FS | Desc.LS | frame.length | (entry === nTx - 1 ? Desc.EOR : 0), 0, buf);
      set(ctx, base, P.CUR_TX, cur + 1);
      const stop = !(slotsAvail(ctx, base) > get(ctx, base, P.STOP_THRESH));
      if (stop) set(ctx, base, P.QUEUE_STOPPED, 1);
      if (!more || stop) doorbell(r);
      return true;
    },

    flush(ctx, base) {
      checkMagic(ctx, base, MAGIC, 'r8169');
      doorbell(Regs.of(ctx, base));
    },

    stats(ctx, base) {
      return {
        txPackets: get(ctx, base, P.TX_PACKETS),
        rxPackets: get(ctx, base, P.RX_PACKETS),
        rxErrors: get(ctx, base, P.RX_ERRORS),
        interrupts: get(ctx, base, P.INTERRUPTS),
      };
    },

    rings: ringsOf,
  };
  return driver;
}
