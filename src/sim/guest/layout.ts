/**
 * Where the simulated guest OS keeps its bookkeeping in RAM. The boot block
 * is the guest's "kernel image header": it names the modules that run and
 * where each keeps its state, so the same code started on the destination
 * over migrated RAM finds everything again (DESIGN rule 1).
 */
export const BOOT_BLOCK_ADDR = 0x8000;
export const BOOT_MAGIC = 0x5453_4742_4d52_4142n; // "BARMBGST" little-endian
export const MAX_MODULES = 16;
/** magic u64, count u32, pad u32, then entries. */
export const BOOT_HEADER_BYTES = 16;
/** module id u32, flags u32, base u64, size u64, nextWakeNs u64. */
export const BOOT_ENTRY_BYTES = 32;
/** Static "kernel text": written once at boot, never again; used to check integrity. */
export const KERNEL_TEXT_ADDR = 0x100000;
export const KERNEL_TEXT_BYTES = 0x10000;
/** Module state regions start here, 4 KiB aligned. */
export const MODULE_AREA_ADDR = KERNEL_TEXT_ADDR + KERNEL_TEXT_BYTES;
/** Guest RAM must at least hold the fixed areas. */
export const MIN_GUEST_RAM = 4 * 1024 * 1024;

export const MODULE_IDS = {
  heartbeat: 1,
  memoryLoad: 2,
  timer: 3,
  nic: 4,
  netApp: 5,
} as const;
export type ModuleName = keyof typeof MODULE_IDS;

export function moduleNameOf(id: number): ModuleName | undefined {
  for (const [k, v] of Object.entries(MODULE_IDS)) if (v === id) return k as ModuleName;
  return undefined;
}
