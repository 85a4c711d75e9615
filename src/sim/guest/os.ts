import type { GuestContext, GuestModule } from './context.js';
import { heartbeat } from './heartbeat.js';
import {
  BOOT_BLOCK_ADDR,
  BOOT_ENTRY_BYTES,
  BOOT_HEADER_BYTES,
  BOOT_MAGIC,
  KERNEL_TEXT_ADDR,
  KERNEL_TEXT_BYTES,
  MAX_MODULES,
  MODULE_AREA_ADDR,
  MODULE_IDS,
  type ModuleName,
  moduleNameOf,
} from './layout.js';
import { memoryLoad } from './memoryLoad.js';
import { timer } from './timer.js';
import { createHash } from 'node:crypto';

/** What to boot: an ordered list of modules with their configuration. */
export interface GuestSpec {
  modules: Array<{ name: ModuleName; config: unknown }>;
}

/**
 * The code of the simulated guest OS. It holds no state: the boot block in
 * RAM lists the modules, their regions and when each next wants to run.
 * Modules that need devices (timer, NIC) are registered by the machine that
 * has those devices.
 */
export class GuestOs {
  private readonly registry = new Map<number, GuestModule<unknown>>();

  constructor() {
    this.register('heartbeat', heartbeat as GuestModule<unknown>);
    this.register('memoryLoad', memoryLoad as GuestModule<unknown>);
    this.register('timer', timer as GuestModule<unknown>);
  }

  register(name: ModuleName, mod: GuestModule<unknown>): void {
    this.registry.set(MODULE_IDS[name], mod);
  }

  /** First boot on a fresh machine: lays out RAM and boots each module. */
  boot(ctx: GuestContext, spec: GuestSpec): void {
    const m = ctx.mem;
    if (spec.modules.length > MAX_MODULES) throw new RangeError(`at most ${MAX_MODULES} guest modules`);
    m.writeBytes(KERNEL_TEXT_ADDR, kernelText());
    let next = MODULE_AREA_ADDR;
    const entries: Array<{ id: number; base: number; size: number }> = [];
    for (const { name, config } of spec.modules) {
      const id = MODULE_IDS[name];
      const mod = this.registry.get(id);
      if (!mod) throw new Error(`guest module ${name} needs a device this node does not have`);
      const size = Math.ceil(mod.regionBytes(config) / 4096) * 4096;
      if (next + size > m.size) throw new RangeError(`guest modules need ${next + size} bytes of RAM, the guest has ${m.size}`);
      entries.push({ id, base: next, size });
      next += size;
    }
    m.write64(BOOT_BLOCK_ADDR, BOOT_MAGIC);
    m.write32(BOOT_BLOCK_ADDR + 8, entries.length);
    entries.forEach((e, i) => {
      const a = BOOT_BLOCK_ADDR + BOOT_HEADER_BYTES + i * BOOT_ENTRY_BYTES;
      m.write32(a, e.id);
      m.write32(a + 4, 0);
      m.write64(a + 8, BigInt(e.base));
      m.write64(a + 16, BigInt(e.size));
      m.write64(a + 24, 0n);
    });
    entries.forEach((e, i) => this.registry.get(e.id)!.boot(ctx, e.base, spec.modules[i]!.config));
  }

  /** Whether RAM holds a booted guest of ours. */
  static isBooted(ctx: GuestContext): boolean {
    return ctx.mem.size > BOOT_BLOCK_ADDR + 8 && ctx.mem.read64(BOOT_BLOCK_ADDR) === BOOT_MAGIC;
  }

  /** Runs every module that is due; returns the guest time of the next wake-up. */
  step(ctx: GuestContext): number {
    const m = ctx.mem;
    const now = ctx.nowNs();
    const n = m.read32(BOOT_BLOCK_ADDR + 8);
    let wake = Infinity;
    for (let i = 0; i < n; i++) {
      const a = BOOT_BLOCK_ADDR + BOOT_HEADER_BYTES + i * BOOT_ENTRY_BYTES;
      let due = Number(m.read64(a + 24));
      if (due <= now) {
        const mod = this.registry.get(m.read32(a));
        if (!mod) continue;
        due = mod.step(ctx, Number(m.read64(a + 8)));
        m.write64(a + 24, BigInt(Math.max(0, Math.floor(due))));
      }
      if (due < wake) wake = due;
    }
    return wake;
  }

  /** Delivers an interrupt vector to every module that handles interrupts. */
  interrupt(ctx: GuestContext, vector: number): void {
    const m = ctx.mem;
    const n = m.read32(BOOT_BLOCK_ADDR + 8);
    for (let i = 0; i < n; i++) {
      const a = BOOT_BLOCK_ADDR + BOOT_HEADER_BYTES + i * BOOT_ENTRY_BYTES;
      const mod = this.registry.get(m.read32(a));
      if (mod?.interrupt?.(ctx, Number(m.read64(a + 8)), vector) === true) m.write64(a + 24, 0n);
    }
  }

  /** Where a module keeps its state, read from the boot block in `bootBlock` bytes. */
  static findModule(bootBlock: Uint8Array, name: ModuleName): { base: number; size: number } | undefined {
    const v = new DataView(bootBlock.buffer, bootBlock.byteOffset, bootBlock.byteLength);
    if (v.getBigUint64(0, true) !== BOOT_MAGIC) return undefined;
    const n = Math.min(v.getUint32(8, true), MAX_MODULES);
    for (let i = 0; i < n; i++) {
      const a = BOOT_HEADER_BYTES + i * BOOT_ENTRY_BYTES;
      if (moduleNameOf(v.getUint32(a, true)) === name) return { base: Number(v.getBigUint64(a + 8, true)), size: Number(v.getBigUint64(a + 16, true)) };
    }
    return undefined;
  }
}

export const BOOT_BLOCK_BYTES = BOOT_HEADER_BYTES + MAX_MODULES * BOOT_ENTRY_BYTES;

/** The static "kernel text": deterministic bytes, never written after boot. */
export function kernelText(): Buffer {
  const out = Buffer.alloc(KERNEL_TEXT_BYTES);
  for (let off = 0, i = 0; off < out.length; off += 32, i++) createHash('sha256').update(`baremig-kernel-${i}`).digest().copy(out, off);
  return out;
}
