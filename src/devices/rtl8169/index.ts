/**
 * RTL8169 NIC: register map, model, hypervisor shadow, reconstructor, and
 * the two guest driver personalities that drive it.
 *
 * Simulator wiring (see model.ts for the options):
 *   const nic = new Rtl8169({ name, mmioBase, mem, clock, irq: (l) => intc.setIrq(n, l), mac, transmit });
 *   bus.attach(nic);                 // BAR1: mmioBase .. mmioBase + 0xff
 *   timed devices: nic.advanceTo(now), nic.nextEventNs()
 *   from the wire / IoTarget.injectFrame: nic.receiveFrame(frame)
 *   hypervisor traps on the BAR feed reduceRtlShadow(); ShadowLog key RTL_SHADOW_KEY
 *   engine: createRtl8169Reconstructor({ mmioBase, device: name })
 */
export * from './registers.js';
export { Rtl8169, type Rtl8169Options, type RtlInternal, type RtlVariant, type LinkPartner, DEFAULT_PARTNER, TCTR_TICK_NS } from './model.js';
export { RTL_SHADOW_KEY, type RtlShadow, type RtlMmioAccess, initialRtlShadow, reduceRtlShadow, rtlShadowFrom } from './shadow.js';
export {
  createRtl8169Reconstructor,
  type Rtl8169ReconstructorConfig,
  type RtlCaptureState,
  type RtlRegSnapshot,
  type RingCapture,
  type IndexMethod,
  ringLenFromEor,
  txGuess,
  rxFromMemory,
  dummyImage,
  planScratch,
  type Scratch,
  type ScratchCandidate,
  DUMMY_IMAGE_LEN,
  DUMMY_X,
  DUMMY_X1,
  DUMMY_Y,
} from './reconstructor.js';
export { type RtlDriver, type RtlDriverConfig, type RtlDriverStats, type ReceiveCallback } from './driverCommon.js';
export { createLinuxR8169Driver, LINUX_NUM_TX_DESC, LINUX_NUM_RX_DESC, type LinuxDriverOptions } from './driverLinux.js';
export { createBsdReDriver, BSD_TX_DESC_CNT, BSD_RX_DESC_CNT, type BsdDriverOptions } from './driverBsd.js';
