/** QEMU as an independent oracle for the 8254/8259 models (differential tests). */
export { findQemu, QEMU_BINARY, QemuMachine, type InfoPic, type InfoPicChip, type QemuMachineOptions } from './qemuMachine.js';
export { closeQemuOracle, QemuPool, runOnQemu, type QemuPoolOptions, type QemuPortOp, type QemuRunResult } from './runOnQemu.js';
export {
  deviceStateFromStream,
  PIC_FIELDS,
  PIT_CHANNEL_FIELDS,
  type QemuDeviceState,
  type QemuPicChipState,
  type QemuPicState,
  type QemuPitChannelState,
  type QemuPitState,
} from './qemuState.js';
export { MigrationStream, parseMigrationStream, type DecodedSection, type DecodedVmsd, type VmDesc, type VmValue } from './migrationStream.js';
