/**
 * Guest driver personality 2: the habits of FreeBSD's re(4)
 * (sys/dev/re/if_re.c, sys/dev/rl/if_rlreg.h) [FBSD] on an RTL8169S:
 *
 * - 256 TX / 256 RX descriptors; prodidx/considx wrap at the ring size
 *   (not free-running); rl_tx_free counts free TX slots and a frame is
 *   refused when it would leave fewer than 2 free (re_encap).
 * - Post TX: vlanctl and buffer address, cmdstat = len (|EOR on the last
 *   slot) without OWN, then EOF, then OWN|SOF on the first descriptor last;
 *   re_start_tx kicks TxPoll NPQ once per batch and, with TX interrupt
 *   moderation (RE_TX_MODERATION), restarts TCTR so TimerInt raises TimeOut.
 * - Reap TX (re_txeof) from considx while not owned; descriptors are NOT
 *   zeroed, the NIC's written-back status stays in the ring.
 * - RX (re_rxeof): at most 16 frames per pass; re-arm with vlanctl = 0 and
 *   cmdstat = OWN | MCLBYTES (2048) | EOR on the last slot.
 * - Interrupt: the filter (re_intr) reads IntrStatus and masks all
 *   (IntrMask = 0) without acking; the task (re_int_task) reads IntrStatus
 *   again and acks it by writing it back BEFORE processing, runs RX / TX,
 *   and unmasks with RL_INTRS_CPLUS unless IntrStatus shows more work.
 * - Init order (re_init_locked): C+ command first, MAC with Cfg9346
 *   unlocked, RX ring base then TX ring base, enable TX/RX, TxConfig,
 *   RX mode (MAR then RxConfig), IntrMitigate 0x5100, IntrMask, ack,
 *   RxMissed, TimerInt, RxMaxSize, then PHY autonegotiation.
 *
 * Deviations, for the simulator: frames spanning descriptors are discarded
 * (re(4) chains them; our buffers hold any standard frame), and the task is
 * re-run when the RX budget ran out ([FBSD] returns EAGAIN when budget is
 * *left*, which reruns the task once more and can strand frames when it ran
 * out exactly; the intent is to rerun while work remains).
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
import { Anar, Bmcr, ChipCmd, Cfg9346, Desc, Gbcr, Intr, Mii, Reg, RxCfg, TxPoll } from './registers.js';

const MAGIC = 0x2030_6572; // "re0 "
export const BSD_TX_DESC_CNT = 256;
export const BSD_RX_DESC_CNT = 256;
const MCLBYTES = 2048;
const RX_BUDGET = 16;
/** RL_TXCFG_CONFIG: IFG | unlimited DMA burst. */
const TX_CONFIG = 0x03000700;
/** RL_RXCFG_CONFIG: no FIFO threshold | unlimited DMA | 64K buffer bits. */
const RX_CONFIG = 0x0000ff00;
/** RL_CPLUSCMD_PCI_MRW | RXCSUM_ENB | RXENB | TXENB. */
const CPLUS = 0x0008 | 0x0020 | 0x0002 | 0x0001;
/** RL_TIMERINT_8169 value with RE_TX_MODERATION. */
const TX_MOD_TIMER = 0x800;
const INTRS_BASE = Intr.RxOK | Intr.RxErr | Intr.TxErr | Intr.RxDescUnavail | Intr.LinkChg | Intr.RxFIFOOver | Intr.TimeOut | Intr.SysErr;

const P = {
  TX_PROD: H.PRIVATE + 0,
  TX_CONS: H.PRIVATE + 4,
  TX_FREE: H.PRIVATE + 8,
  RX_IDX: H.PRIVATE + 12, // rl_rx_prodidx: where re_rxeof resumes
  TASK_PENDING: H.PRIVATE + 16,
  INTRS: H.PRIVATE + 20,
  MODERATION: H.PRIVATE + 24,
  LINK: H.PRIVATE + 28,
  TX_PACKETS: H.PRIVATE + 32,
  RX_PACKETS: H.PRIVATE + 36,
  RX_ERRORS: H.PRIVATE + 40,
  INTERRUPTS: H.PRIVATE + 44,
} as const;

export interface BsdDriverOptions {
  onReceive: ReceiveCallback;
  /** Build option RE_TX_MODERATION: TX completion by TimeOut instead of TxOK (default on). */
  txModeration?: boolean;
}

export function createBsdReDriver(opts: BsdDriverOptions): RtlDriver {
  const moderation = opts.txModeration ?? true;
  const intrs = moderation ? INTRS_BASE : INTRS_BASE | Intr.TxOK;
  const get = (ctx: GuestContext, base: number, f: number) => ctx.mem.read32(base + f);
  const set = (ctx: GuestContext, base: number, f: number, v: number) => ctx.mem.write32(base + f, v >>> 0);
  const bump = (ctx: GuestContext, base: number, f: number) => set(ctx, base, f, get(ctx, base, f) + 1);

  function armRx(ctx: GuestContext, base: number, i: number): void {
    const { rxRing, nRx } = ringsOf(ctx, base);
    // re_newbuf / re_discard_rxbuf: vlanctl 0, address, then cmdstat with OWN.
    writeDesc(ctx, rxRing + i * Desc.BYTES, Desc.OWN | MCLBYTES | (i === nRx - 1 ? Desc.EOR : 0), 0, get(ctx, base, H.RXBUFS) + i * MCLBYTES);
  }

  /** re_rxeof: true when the budget ran out (more may be waiting). */
  function rxeof(ctx: GuestContext, base: number): boolean {
    const m = ctx.mem;
    const { rxRing, nRx } = ringsOf(ctx, base);
    let i = get(ctx, base, P.RX_IDX);
    let maxpkt = RX_BUDGET;
    for (; maxpkt > 0; i = (i + 1) % nRx) {
      const rxstat = m.read32(rxRing + i * Desc.BYTES);
      if (rxstat & Desc.OWN) break;
      const totalLen = rxstat & 0x1fff; // rl_rxlenmask on the 8169
      if (!(rxstat & Desc.LS) || !(rxstat & Desc.FS) || rxstat & Desc.RxRES) {
        bump(ctx, base, P.RX_ERRORS);
        armRx(ctx, base, i);
        continue;
      }
      const frame = new Uint8Array(m.readBytes(get(ctx, base, H.RXBUFS) + i * MCLBYTES, Math.max(0, totalLen - 4)));
      armRx(ctx, base, i);
      maxpkt--;
      bump(ctx, base, P.RX_PACKETS);
      opts.onReceive(ctx, frame);
    }
    set(ctx, base, P.RX_IDX, i);
    return maxpkt === 0;
  }

  /** re_txeof: reclaim until the first owned descriptor; nothing is zeroed. */
  function txeof(ctx: GuestContext, base: number, r: Regs): void {
    const m = ctx.mem;
    const { txRing, nTx } = ringsOf(ctx, base);
    let cons = get(ctx, base, P.TX_CONS);
    const prod = get(ctx, base, P.TX_PROD);
    if (cons === prod) return;
    let free = get(ctx, base, P.TX_FREE);
    for (; cons !== prod; cons = (cons + 1) % nTx) {
      const txstat = m.read32(txRing + cons * Desc.BYTES);
      if (txstat & Desc.OWN) break;
      if (txstat & Desc.LS) bump(ctx, base, P.TX_PACKETS);
      free++;
    }
    set(ctx, base, P.TX_CONS, cons);
    set(ctx, base, P.TX_FREE, free);
    // RE_TX_MODERATION: while frames are outstanding, reload the timer for another TimeOut.
    if (moderation && free !== nTx) r.w32(Reg.TCTR, 1);
  }

  function startTx(ctx: GuestContext, base: number, r: Regs): void {
    // re_start_tx: kick, and with moderation restart TCTR (any write zeroes it).
    r.w8(Reg.TXPOLL, TxPoll.NPQ);
    if (get(ctx, base, P.MODERATION)) r.w32(Reg.TCTR, 1);
  }

  const driver: RtlDriver = {
    name: 're',

    regionBytes(cfg: RtlDriverConfig) {
      const nTx = checkRingSize(cfg.txRing ?? BSD_TX_DESC_CNT, 'TX');
      const nRx = checkRingSize(cfg.rxRing ?? BSD_RX_DESC_CNT, 'RX');
      return regionBytesFor(nTx, nRx, MCLBYTES, MCLBYTES);
    },

    boot(ctx, base, cfg) {
      const nTx = checkRingSize(cfg.txRing ?? BSD_TX_DESC_CNT, 'TX');
      const nRx = checkRingSize(cfg.rxRing ?? BSD_RX_DESC_CNT, 'RX');
      const plan = planRegion(base, nTx, nRx, MCLBYTES, MCLBYTES);
      writeHeader(ctx, base, MAGIC, cfg.mmioBase, nTx, nRx, plan, MCLBYTES, MCLBYTES);
      set(ctx, base, P.INTRS, intrs);
      set(ctx, base, P.MODERATION, moderation ? 1 : 0);
      const r = Regs.of(ctx, base);
      const m = ctx.mem;
      const mac = cfg.mac ? macBytes(cfg.mac) : Uint8Array.from([0, 1, 2, 3, 4, 5].map((i) => r.r8(Reg.IDR0 + i)));

      // re_stop: stop accepting, disable TX/RX, mask and ack everything.
      r.w32(Reg.RXCONFIG, r.r32(Reg.RXCONFIG) & ~(RxCfg.AcceptAllPhys | RxCfg.AcceptMyPhys | RxCfg.AcceptMulticast | RxCfg.AcceptBroadcast));
      r.w8(Reg.CHIPCMD, 0);
      r.w16(Reg.INTRMASK, 0);
      r.w16(Reg.INTRSTATUS, 0xffff);
      // re_reset
      chipReset(r);
      // re_rx_list_init / re_tx_list_init: zeroed lists, RX armed, EOR on the last TX slot.
      m.fill(plan.rxRing, nRx * Desc.BYTES, 0);
      for (let i = 0; i < nRx; i++) armRx(ctx, base, i);
      m.fill(plan.txRing, nTx * Desc.BYTES, 0);
      m.write32(plan.txRing + (nTx - 1) * Desc.BYTES, Desc.EOR);
      set(ctx, base, P.TX_PROD, 0);
      set(ctx, base, P.TX_CONS, 0);
      set(ctx, base, P.TX_FREE, nTx);
      set(ctx, base, P.RX_IDX, 0);

      // "We must configure the C+ register before all others."
      r.w16(Reg.CPLUSCMD, CPLUS);
      // MAC: "we need to enter config register write enable mode to modify the ID registers".
      r.w8(Reg.CFG9346, Cfg9346.Unlock);
      r.w32(Reg.IDR0, mac[0]! | (mac[1]! << 8) | (mac[2]! << 16) | (mac[3]! << 24));
      r.w32(Reg.IDR4, mac[4]! | (mac[5]! << 8));
      r.w8(Reg.CFG9346, Cfg9346.Lock);
      // RX list first, then TX list (high dword before low).
      r.w32(Reg.RDSAR_HI, 0);
      r.w32(Reg.RDSAR_LO, plan.rxRing);
      r.w32(Reg.TNPDS_HI, 0);
      r.w32(Reg.TNPDS_LO, plan.txRing);
      // Pre-8168G: enable TX/RX before configuring them.
      r.w8(Reg.CHIPCMD, ChipCmd.TxEnb | ChipCmd.RxEnb);
      r.w32(Reg.TXCONFIG, TX_CONFIG);
      r.w8(Reg.EARLYTXTHRES, 16);
      // re_set_rxmode: hash filter then RxConfig.
      let rxfilt = RX_CONFIG | RxCfg.AcceptMyPhys | RxCfg.AcceptBroadcast;
      let h: [number, number] = [0, 0];
      if (cfg.promisc) {
        rxfilt |= RxCfg.AcceptAllPhys | RxCfg.AcceptMulticast;
        h = [0xffffffff, 0xffffffff];
      } else if (cfg.multicast && cfg.multicast.length > 0) {
        rxfilt |= RxCfg.AcceptMulticast;
        h = multicastFilter(cfg.multicast);
      }
      r.w32(Reg.MAR0, h[0]);
      r.w32(Reg.MAR4, h[1]);
      r.w32(Reg.RXCONFIG, rxfilt);
      // "Configure interrupt moderation. Magic from vendor."
      r.w16(Reg.INTRMITIGATE, 0x5100);
      r.w16(Reg.INTRMASK, intrs);
      r.w16(Reg.INTRSTATUS, intrs);
      r.w32(Reg.RXMISSED, 0);
      r.w32(Reg.TIMERINT, moderation ? TX_MOD_TIMER : 0);
      r.w16(Reg.RXMAXSIZE, 16383);
      // CFG1 |= DRVLOAD is written with the config registers locked: the chip ignores it.
      r.w8(Reg.CONFIG1, r.r8(Reg.CONFIG1) | 0x20);
      // mii_mediachg -> rgephy: reset, advertise (with symmetric and asymmetric pause), 1000 FD+HD, start.
      mdioWrite(r, Mii.BMCR, Bmcr.Reset);
      mdioWrite(r, Mii.ANAR, Anar.A10HD | Anar.A10FD | Anar.A100HD | Anar.A100FD | Anar.Pause | 0x0800 | 0x0001);
      mdioWrite(r, Mii.GBCR, Gbcr.A1000FD | Gbcr.A1000HD);
      mdioWrite(r, Mii.BMCR, Bmcr.AnEnable | Bmcr.AnRestart);
    },

    step(ctx, base) {
      checkMagic(ctx, base, MAGIC, 're');
      const now = ctx.nowNs();
      if (!get(ctx, base, P.TASK_PENDING)) return now + 1e9;
      // re_int_task: read and ack first, then process.
      const r = Regs.of(ctx, base);
      const status = r.r16(Reg.INTRSTATUS);
      r.w16(Reg.INTRSTATUS, status);
      let more = false;
      if (status & (Intr.RxOK | Intr.RxErr | Intr.RxFIFOOver)) more = rxeof(ctx, base);
      const txBits = (get(ctx, base, P.MODERATION) ? Intr.TimeOut : Intr.TxOK) | Intr.TxErr | Intr.TxDescUnavail;
      if (status & txBits) txeof(ctx, base, r);
      if (status & Intr.LinkChg) {
        // re_miibus_statchg via mii_tick: look at the PHY.
        const bmsr = mdioRead(r, Mii.BMSR);
        set(ctx, base, P.LINK, bmsr < 0 ? 0 : bmsr);
      }
      if (r.r16(Reg.INTRSTATUS) & get(ctx, base, P.INTRS) || more) return now;
      set(ctx, base, P.TASK_PENDING, 0);
      r.w16(Reg.INTRMASK, get(ctx, base, P.INTRS));
      return now + 1e9;
    },

    interrupt(ctx, base) {
      checkMagic(ctx, base, MAGIC, 're');
      const r = Regs.of(ctx, base);
      // re_intr (filter): stray unless one of our bits; mask all, defer to the task.
      const status = r.r16(Reg.INTRSTATUS);
      if (status === 0xffff || !(status & get(ctx, base, P.INTRS))) return;
      bump(ctx, base, P.INTERRUPTS);
      r.w16(Reg.INTRMASK, 0);
      set(ctx, base, P.TASK_PENDING, 1);
    },

    send(ctx, base, frame, more = false) {
      checkMagic(ctx, base, MAGIC, 're');
      if (frame.length === 0 || frame.length > MCLBYTES) throw new RangeError(`frame of ${frame.length} bytes`);
      const free = get(ctx, base, P.TX_FREE);
      // re_start_locked loops while rl_tx_free > 1; re_encap refuses when tx_free - nsegs <= 1.
      if (free <= 1 || free - 1 <= 1) return false;
      const { txRing, nTx } = ringsOf(ctx, base);
      const m = ctx.mem;
      const prod = get(ctx, base, P.TX_PROD);
      const at = txRing + prod * Desc.BYTES;
      const buf = get(ctx, base, H.TXBUFS) + prod * MCLBYTES;
      m.writeBytes(buf, frame);
      // One segment: cmdstat = len | EOR-if-last (no OWN on the first segment yet) ...
      writeDesc(ctx, at, frame.length | (prod === nTx - 1 ? Desc.EOR : 0), 0, buf);
      set(ctx, base, P.TX_FREE, free - 1);
      set(ctx, base, P.TX_PROD, (prod + 1) % nTx);
      // ... EOF on the last descriptor, then SOF and OWN on the first.
      m.write32(at, (m.read32(at) | Desc.LS) >>> 0);
      m.write32(at, (m.read32(at) | Desc.OWN | Desc.FS) >>> 0);
      if (!more) startTx(ctx, base, Regs.of(ctx, base));
      return true;
    },

    flush(ctx, base) {
      checkMagic(ctx, base, MAGIC, 're');
      startTx(ctx, base, Regs.of(ctx, base));
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
