/**
 * RTL8169 register map, descriptor layout and the few algorithms the NIC
 * and its drivers share (Ethernet FCS, multicast hash).
 *
 * Sources: /work/shared/reference/rtl8169.md (the facts we gathered), the
 * Linux driver drivers/net/ethernet/realtek/r8169_main.c [LNX], FreeBSD
 * sys/dev/re/if_re.c and sys/dev/rl/if_rlreg.h [FBSD], and the RTL8169
 * datasheet rev 1.21 [DS]. Names follow [LNX] where it has one.
 */

/** Size of the MMIO BAR (BAR1) [LNX R8169_REGS_SIZE]. */
export const RTL_BAR_SIZE = 256;

/** Register offsets within the BAR (little-endian). */
export const Reg = {
  IDR0: 0x00, // MAC 0..3 (R/W only with Cfg9346 unlocked [FBSD re_init_locked])
  IDR4: 0x04, // MAC 4..5 (0x06/0x07 reserved)
  MAR0: 0x08, // multicast hash bits 0..31
  MAR4: 0x0c, // multicast hash bits 32..63
  DTCCR_LO: 0x10, // tally dump address [31:6], bit 3 Cmd [DS p15]
  DTCCR_HI: 0x14,
  TNPDS_LO: 0x20, // normal-priority TX ring base
  TNPDS_HI: 0x24,
  THPDS_LO: 0x28, // high-priority TX ring base
  THPDS_HI: 0x2c,
  CHIPCMD: 0x37,
  TXPOLL: 0x38,
  INTRMASK: 0x3c,
  INTRSTATUS: 0x3e,
  TXCONFIG: 0x40,
  RXCONFIG: 0x44,
  TCTR: 0x48,
  RXMISSED: 0x4c,
  CFG9346: 0x50,
  CONFIG0: 0x51,
  CONFIG1: 0x52,
  CONFIG2: 0x53,
  CONFIG3: 0x54,
  CONFIG4: 0x55,
  CONFIG5: 0x56,
  TIMERINT: 0x58,
  MULINTR: 0x5c,
  PHYAR: 0x60,
  PHYSTATUS: 0x6c,
  RXMAXSIZE: 0xda,
  CPLUSCMD: 0xe0,
  INTRMITIGATE: 0xe2,
  RDSAR_LO: 0xe4,
  RDSAR_HI: 0xe8,
  EARLYTXTHRES: 0xec,
} as const;

/** ChipCmd (0x37) bits [LNX ChipCmdBits]. */
export const ChipCmd = {
  StopReq: 0x80,
  Reset: 0x10,
  RxEnb: 0x08,
  TxEnb: 0x04,
  RxBufEmpty: 0x01,
} as const;

/** TxPoll (0x38) bits: write-only triggers [LNX]. */
export const TxPoll = {
  HPQ: 0x80,
  NPQ: 0x40,
  FSWInt: 0x01,
} as const;

/** IntrMask / IntrStatus bits [LNX InterruptStatusBits, FBSD RL_ISR_*]. */
export const Intr = {
  RxOK: 0x0001,
  RxErr: 0x0002,
  TxOK: 0x0004,
  TxErr: 0x0008,
  RxDescUnavail: 0x0010, // [LNX] RxOverflow, [FBSD] RL_ISR_RX_OVERRUN
  LinkChg: 0x0020,
  RxFIFOOver: 0x0040,
  TxDescUnavail: 0x0080,
  SWInt: 0x0100,
  TimeOut: 0x4000, // [FBSD] RL_ISR_TIMEOUT_EXPIRED
  SysErr: 0x8000,
} as const;
/** Bits IntrStatus can hold at all; the others read 0. */
export const INTR_IMPLEMENTED = 0xc1ff;

/** Cfg9346 (0x50) modes [LNX Cfg9346Bits]. */
export const Cfg9346 = {
  Lock: 0x00,
  AutoLoad: 0x40,
  Unlock: 0xc0,
  ModeMask: 0xc0,
} as const;

/** TxConfig (0x40). */
export const TxCfg = {
  /** Loopback field [18:17] ([FBSD] RL_TXCFG_LOOPBKTST). */
  LoopbackMask: 0x00060000,
  /** 01 = MAC loopback: TX frames come back into RX and do not leave ([FBSD] RL_LOOPTEST_ON). */
  LoopbackMac: 0x00020000,
  /**
   * Read-only hardware-ID bits: XID = (TxConfig >> 20) & 0xfcf [LNX
   * rtl8169_get_mac_version]. Bits 25:24 (IFG) are writable, so the read-only
   * set is bits 31:26 and 23:20.
   */
  HwIdMask: 0xfcf00000,
  /** RTL8169S: XID 0x008 [reference]. */
  HwId8169S: 0x00800000,
  /** IFG [25:24], bit 16 (no CRC append), loopback [18:17], DMA burst [10:8]. */
  Writable: 0x03070700,
} as const;

/** RxConfig (0x44) accept bits [LNX rx_mode_bits]. */
export const RxCfg = {
  AcceptAllPhys: 0x01, // AAP
  AcceptMyPhys: 0x02, // APM
  AcceptMulticast: 0x04, // AM
  AcceptBroadcast: 0x08, // AB
  AcceptRunt: 0x10, // AR
  AcceptErr: 0x20, // AER
  AcceptMask: 0x3f,
  /**
   * Writable bits: accept [5:0], DMA burst [10:8], early-off / 8139 buffer
   * bits [12:11], FIFO threshold [15:13]. Which upper bits exist on the
   * 8169S is unverified; the model stores these and reads 0 elsewhere.
   */
  Writable: 0x0000ff3f,
} as const;

/** PHYAR (0x60) fields [reference]. */
export const Phyar = {
  Flag: 0x80000000,
  RegShift: 16,
  RegMask: 0x1f,
  DataMask: 0xffff,
} as const;

/** PHYstatus (0x6c) bits [LNX rtl8169_PHYstatus]. */
export const PhyStatus = {
  TBI: 0x80,
  TxFlow: 0x40,
  RxFlow: 0x20,
  M1000: 0x10,
  M100: 0x08,
  M10: 0x04,
  LinkSts: 0x02,
  FullDup: 0x01,
} as const;

/** CPlusCmd (0xe0) bits [LNX]. */
export const CPlus = {
  PCIMulRW: 0x0008,
  PCIDAC: 0x0010,
  RxChkSum: 0x0020,
  RxVlan: 0x0040,
} as const;

/** DTCCR low dword: Cmd bit; the address is 64-byte aligned [DS p15]. */
export const Dtccr = {
  Cmd: 0x08,
  AddrMask: 0xffffffc0,
} as const;

/** Descriptor word 0 (opts1) bits [reference, LNX DescStatusBit]. */
export const Desc = {
  BYTES: 16,
  OWN: 0x80000000,
  EOR: 0x40000000,
  FS: 0x20000000,
  LS: 0x10000000,
  /** TX: frame-fragment length [15:0]. */
  TxLenMask: 0x0000ffff,
  /** RX (owned by NIC): buffer size [13:0]; (filled): length incl. CRC [13:0]. */
  RxLenMask: 0x00003fff,
  /** RX filled: multicast / physical-address match / broadcast [reference bits 27–25]. */
  RxMAR: 0x08000000,
  RxPAM: 0x04000000,
  RxBAR: 0x02000000,
  /** RX filled: error summary, CRC error. */
  RxRES: 0x00200000,
  RxCRC: 0x00080000,
} as const;

/** Largest ring the NIC walks: 1024 descriptors [reference]. */
export const MAX_RING_DESCRIPTORS = 1024;
/** Ring bases are 256-byte aligned [reference]. */
export const RING_ALIGN = 256;
/** Minimum Ethernet frame without FCS; the NIC pads short TX frames to it [reference]. */
export const ETH_ZLEN = 60;
export const ETH_FCS_LEN = 4;
/** Largest frame the model gathers from TX descriptors (16 KiB, the RX length field's range). */
export const MAX_FRAME = 16383;

/**
 * Tally counters dumped by DTCCR (64 bytes) [LNX struct rtl8169_counters]:
 * tx_packets u64 @0, rx_packets u64 @8, tx_errors u64 @16, rx_errors u32 @24,
 * rx_missed u16 @28, align_errors u16 @30, tx_one_collision u32 @32,
 * tx_multi_collision u32 @36, rx_unicast u64 @40, rx_broadcast u64 @48,
 * rx_multicast u32 @56, tx_aborted u16 @60, tx_underrun u16 @62.
 */
export const TALLY_BYTES = 64;
export interface Tally {
  txOk: number;
  rxOk: number;
  txErr: number;
  rxErr: number;
  rxMissed: number;
  rxUnicast: number;
  rxBroadcast: number;
  rxMulticast: number;
}
export const TALLY_FIELDS: ReadonlyArray<keyof Tally> = ['txOk', 'rxOk', 'txErr', 'rxErr', 'rxMissed', 'rxUnicast', 'rxBroadcast', 'rxMulticast'];

export function emptyTally(): Tally {
  return { txOk: 0, rxOk: 0, txErr: 0, rxErr: 0, rxMissed: 0, rxUnicast: 0, rxBroadcast: 0, rxMulticast: 0 };
}

export function encodeTally(t: Tally): Uint8Array {
  const b = new Uint8Array(TALLY_BYTES);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(t.txOk), true);
  v.setBigUint64(8, BigInt(t.rxOk), true);
  v.setBigUint64(16, BigInt(t.txErr), true);
  v.setUint32(24, t.rxErr >>> 0, true);
  v.setUint16(28, t.rxMissed & 0xffff, true);
  v.setBigUint64(40, BigInt(t.rxUnicast), true);
  v.setBigUint64(48, BigInt(t.rxBroadcast), true);
  v.setUint32(56, t.rxMulticast >>> 0, true);
  return b;
}

export function decodeTally(b: Uint8Array): Tally {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return {
    txOk: Number(v.getBigUint64(0, true)),
    rxOk: Number(v.getBigUint64(8, true)),
    txErr: Number(v.getBigUint64(16, true)),
    rxErr: v.getUint32(24, true),
    rxMissed: v.getUint16(28, true),
    rxUnicast: Number(v.getBigUint64(40, true)),
    rxBroadcast: Number(v.getBigUint64(48, true)),
    rxMulticast: v.getUint32(56, true),
  };
}

/** MII (clause 22) registers of the internal PHY. */
export const Mii = {
  BMCR: 0x00,
  BMSR: 0x01,
  PHYID1: 0x02,
  PHYID2: 0x03,
  ANAR: 0x04,
  ANLPAR: 0x05,
  ANER: 0x06,
  GBCR: 0x09, // 1000BASE-T control
  GBSR: 0x0a, // 1000BASE-T status
  GBESR: 0x0f, // extended status
} as const;

export const Bmcr = {
  Reset: 0x8000,
  Loopback: 0x4000,
  Speed100: 0x2000,
  AnEnable: 0x1000,
  PowerDown: 0x0800,
  Isolate: 0x0400,
  AnRestart: 0x0200,
  FullDuplex: 0x0100,
  Speed1000: 0x0040,
  /** Bits that act and clear themselves: never replayed as state. */
  SelfClearing: 0x8200,
} as const;

export const Bmsr = {
  Caps: 0x7949, // 100FD/HD, 10FD/HD, ext status, preamble suppr., AN ability, ext caps
  AnComplete: 0x0020,
  LinkStatus: 0x0004,
} as const;

export const Anar = {
  A10HD: 0x0020,
  A10FD: 0x0040,
  A100HD: 0x0080,
  A100FD: 0x0100,
  Pause: 0x0400,
  Ack: 0x4000,
} as const;

export const Gbcr = { A1000HD: 0x0100, A1000FD: 0x0200 } as const;
export const Gbsr = { LP1000HD: 0x0400, LP1000FD: 0x0800 } as const;

// ---------------------------------------------------------------------------
// CRCs

const FCS_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** IEEE 802.3 frame check sequence (reflected CRC-32), as the MAC appends it. */
export function ethernetFcs(frame: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < frame.length; i++) c = FCS_TABLE[(c ^ frame[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * The big-endian CRC-32 the RTL8169's multicast filter hashes with: data bits
 * taken LSB first, polynomial 0x04c11db7 shifted left, initial all-ones, no
 * final inversion ([FBSD] ether_crc32_be, [LNX] ether_crc).
 */
export function etherCrc32Be(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) {
    let byte = data[i]!;
    for (let bit = 0; bit < 8; bit++, byte >>>= 1) {
      const carry = ((crc >>> 31) ^ byte) & 1;
      crc = (crc << 1) >>> 0;
      if (carry) crc = ((crc ^ 0x04c11db7) | carry) >>> 0;
    }
  }
  return crc >>> 0;
}

/** Bit index 0..63 in MAR0..7 for a multicast address: crc >> 26 [reference]. */
export function multicastHashBit(addr: Uint8Array): number {
  return etherCrc32Be(addr.subarray(0, 6)) >>> 26;
}

export function isBroadcast(frame: Uint8Array): boolean {
  for (let i = 0; i < 6; i++) if (frame[i] !== 0xff) return false;
  return true;
}

export function isMulticast(frame: Uint8Array): boolean {
  return (frame[0]! & 1) === 1;
}

/** Speed/duplex a clause-22 PHY ends up with. */
export interface MiiLinkMode {
  speed: 10 | 100 | 1000;
  full: boolean;
}

/**
 * The mode a link comes up in, from our BMCR/ANAR/GBCR and the partner's
 * ANLPAR/GBSR: with autonegotiation the best mode both advertise (IEEE
 * 802.3 Annex 28B priority), else the forced BMCR speed and duplex. null
 * when autonegotiation finds nothing in common.
 */
export function negotiateMii(bmcr: number, anar: number, gbcr: number, anlpar: number, gbsr: number): MiiLinkMode | null {
  if (!(bmcr & Bmcr.AnEnable)) {
    const speed = bmcr & Bmcr.Speed1000 ? 1000 : bmcr & Bmcr.Speed100 ? 100 : 10;
    return { speed, full: (bmcr & Bmcr.FullDuplex) !== 0 };
  }
  const g = gbcr & (gbsr >> 2);
  const a = anar & anlpar;
  if (g & Gbcr.A1000FD) return { speed: 1000, full: true };
  if (g & Gbcr.A1000HD) return { speed: 1000, full: false };
  if (a & Anar.A100FD) return { speed: 100, full: true };
  if (a & Anar.A100HD) return { speed: 100, full: false };
  if (a & Anar.A10FD) return { speed: 10, full: true };
  if (a & Anar.A10HD) return { speed: 10, full: false };
  return null;
}

/** PHYstatus bits (link, speed, duplex) for a link mode; 0 when down. */
export function phyStatusFor(mode: MiiLinkMode | null): number {
  if (!mode) return 0;
  const sp = mode.speed === 1000 ? PhyStatus.M1000 : mode.speed === 100 ? PhyStatus.M100 : PhyStatus.M10;
  return PhyStatus.LinkSts | sp | (mode.full ? PhyStatus.FullDup : 0);
}
