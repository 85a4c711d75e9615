/**
 * The simulated node's native agent: the hypervisor's C agent core
 * (hypervisor/core/, the same code the BitVisor binding runs) loaded as a
 * Node-API addon (build/Release/baremig_hosted.node, hypervisor/hosted/napi_hal.c)
 * in front of this node's Machine, instead of the TypeScript agent. The core
 * speaks the agent protocol over raw Ethernet frames on an AF_PACKET socket
 * (the migration link), and reaches the node through the NativeHost below:
 *
 * - guest RAM: the GuestMemory buffer (the node's physical RAM), by pointer;
 * - write tracking: GuestMemory's dirty map, by pointer (collected and cleared
 *   on the main thread, where the guest runs: nothing writes in between);
 * - boot / prepareIncoming / pause / resume / release and the vCPU: Machine;
 * - port I/O and MMIO: the device bus (DeviceBus.agentIn/agentOut: the agent's
 *   own port accesses reach the shadows too, so they keep describing the chips
 *   after a capture or a restore), devices brought to the node clock first, as
 *   the TypeScript agent's IoProgram runner does;
 * - shadows of the 8254 and 8259: the core's reducers (core/shadow.c), fed by
 *   port traps on this bus and by the vCPU's interrupt acknowledges.
 *
 * Everything runs on the Node main thread: libuv calls the core when the link
 * is readable or the core's timer is due, and the core calls back into this
 * host synchronously. Opening the AF_PACKET socket needs CAP_NET_RAW (and
 * CAP_SYS_ADMIN for a socket in another network namespace).
 */
import { createRequire } from 'node:module';
import { Packr } from 'msgpackr';
import type { AccessSize } from '../../devices/io.js';
import { MODULE_IDS, type ModuleName } from '../guest/layout.js';
import type { GuestSpec } from '../guest/os.js';
import type { Machine } from '../machine.js';
import { GPR_NAMES, MSR_NAMES, SEGMENT_NAMES, type VcpuState, XSAVE_BYTES, checkVcpuState, cloneVcpu } from '../vcpu.js';

/** The addon's exports (hypervisor/hosted/napi_hal.c). */
interface HostedAddon {
  start(o: {
    name: string;
    ramCapacity: number;
    keyHex: string;
    ifname: string;
    netns?: string;
    loss?: number;
    trapPic: boolean;
    trapPit: boolean;
    devices: Array<{ kind: string; name: string; mmioBase?: number }>;
    host: NativeHost;
  }): { mac: string; mtu: number; sha256: string };
  portTrap(out: boolean, port: number, size: number, value: number): void;
  inta(master: number, slave?: number): void;
  resetShadows(): void;
  stats(): Record<string, number>;
  stop(): void;
}

/** What the core calls (napi_hal.c; the vCPU words' layout is its V_* enum). */
interface NativeHost {
  vcpu: BigUint64Array;
  xsave: Uint8Array;
  /** Devices to the node clock (after the core let time pass). */
  advance(): void;
  portIn(port: number, size: number): number;
  portOut(port: number, size: number, value: number): void;
  mmioRead(addr: number, size: number): number;
  mmioWrite(addr: number, size: number, value: number): void;
  injectFrame(device: string, frame: Buffer): boolean;
  boot(ramBytes: number, spec: Buffer): Buffer | string;
  alloc(ramBytes: number): Buffer | string;
  release(): void;
  pause(): string | undefined;
  resume(incoming: boolean): string | undefined;
  vcpuGet(): void;
  vcpuSet(): void;
  dirty(): Uint8Array;
}

const V = { gpr: 0, rip: 16, rflags: 17, cr0: 18, cr2: 19, cr3: 20, cr4: 21, cr8: 22, tsc: 23, seg: 24, gdtrBase: 56, gdtrLimit: 57, idtrBase: 58, idtrLimit: 59, msr: 60, activity: 71, wallUs: 72, words: 73 } as const;

let addon: HostedAddon | null = null;
export function hostedAddon(): HostedAddon {
  if (addon) return addon;
  const require = createRequire(import.meta.url);
  try {
    // src/sim/node and dist/sim/node are both three levels below the package root.
    addon = require('../../../build/Release/baremig_hosted.node') as HostedAddon;
  } catch (e) {
    throw new Error(`the native agent addon is not built (${(e as Error).message.split('\n')[0]}): run 'npm rebuild' (needs make, gcc and Node's headers)`);
  }
  return addon;
}

export interface NativeAgentOptions {
  name: string;
  keyHex: string;
  ramCapacity: number;
  /** The migration link: an interface, in network namespace `netns` (/var/run/netns/NAME) if given. */
  link: { ifname: string; netns?: string; loss?: number };
}

// As the protocol codec (src/protocol/codec.ts) decodes messages.
const packr = new Packr({ useRecords: false, int64AsType: 'bigint', mapsAsObjects: true, moreTypes: false });
/** The core hands over the request from the spec value on: decode that one value. */
function firstValue(bytes: Uint8Array): unknown {
  let v: unknown;
  packr.unpackMultiple(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), (x: unknown) => {
    v = x;
    return false;
  });
  return v;
}

function validSpec(x: unknown): GuestSpec | string {
  const s = x as { modules?: Array<{ name?: unknown; config?: unknown }> };
  if (typeof s !== 'object' || s === null || !Array.isArray(s.modules)) return 'spec must have modules';
  for (const m of s.modules) if (typeof m.name !== 'string' || !(m.name in MODULE_IDS)) return `unknown guest module ${String(m.name)}`;
  return { modules: s.modules.map((m) => ({ name: m.name as ModuleName, config: m.config })) } as GuestSpec;
}

/** Starts the native agent on `machine`. Returns its link address and a stop function. */
export function startNativeAgent(machine: Machine, o: NativeAgentOptions): { mac: string; mtu: number; sha256: string; stats(): Record<string, number>; stop(): void } {
  const native = hostedAddon();
  const m = machine;
  const vw = new BigUint64Array(V.words);
  const xsave = new Uint8Array(XSAVE_BYTES);
  /** Devices to the node clock before the agent touches them (as the TypeScript agent's IoTarget.advance). */
  const advance = () => {
    const now = m.clock.nowNs();
    for (const d of m.devices) d.timed?.advanceTo(now);
  };
  const ramOf = () => m.mem!.bytes;
  const host: NativeHost = {
    vcpu: vw,
    xsave,
    advance,
    portIn: (port, size) => {
      advance();
      return m.bus.agentIn(port, size as AccessSize);
    },
    portOut: (port, size, value) => {
      advance();
      m.bus.agentOut(port, size as AccessSize, value);
    },
    mmioRead: (addr, size) => {
      advance();
      return m.bus.mmioRead(addr, size as AccessSize) >>> 0;
    },
    mmioWrite: (addr, size, value) => {
      advance();
      m.bus.mmioWrite(addr, size as AccessSize, value >>> 0);
    },
    injectFrame: (device, frame) => {
      const d = m.devices.find((x) => x.name === device);
      if (!d?.receiveFrame) return false;
      advance();
      d.receiveFrame(new Uint8Array(frame));
      return true;
    },
    boot: (ramBytes, specBytes) => {
      let spec: GuestSpec | string;
      try {
        spec = validSpec(firstValue(specBytes));
      } catch (e) {
        spec = `spec: ${(e as Error).message}`;
      }
      if (typeof spec === 'string') return spec;
      try {
        // The guest programs its chips while it boots: the shadows start from reset before.
        native.resetShadows();
        m.boot(ramBytes, spec);
        return ramOf();
      } catch (e) {
        m.release();
        return (e as Error).message;
      }
    },
    alloc: (ramBytes) => {
      try {
        native.resetShadows();
        m.prepareIncoming(ramBytes);
        return ramOf();
      } catch (e) {
        return (e as Error).message;
      }
    },
    release: () => m.release(),
    pause: () => {
      try {
        m.pause();
      } catch (e) {
        return (e as Error).message;
      }
      vw[V.tsc] = m.vcpu.tsc;
      vw[V.wallUs] = BigInt(Math.round(m.getVcpu().tscWallMs * 1000));
      return undefined;
    },
    resume: (incoming) => {
      try {
        if (incoming !== (m.state === 'incoming')) throw new Error(`guest is ${m.state}`);
        m.resume();
      } catch (e) {
        return (e as Error).message;
      }
      return undefined;
    },
    vcpuGet: () => {
      const { vcpu: s, tscWallMs } = m.getVcpu();
      GPR_NAMES.forEach((n, i) => (vw[V.gpr + i] = s.gpr[n]));
      vw[V.rip] = s.rip;
      vw[V.rflags] = s.rflags;
      vw[V.cr0] = s.cr0;
      vw[V.cr2] = s.cr2;
      vw[V.cr3] = s.cr3;
      vw[V.cr4] = s.cr4;
      vw[V.cr8] = s.cr8;
      vw[V.tsc] = s.tsc;
      SEGMENT_NAMES.forEach((n, i) => {
        const g = s.seg[n];
        vw[V.seg + 4 * i] = BigInt(g.selector);
        vw[V.seg + 4 * i + 1] = BigInt(g.limit);
        vw[V.seg + 4 * i + 2] = BigInt(g.attributes);
        vw[V.seg + 4 * i + 3] = g.base;
      });
      vw[V.gdtrBase] = s.gdtr.base;
      vw[V.gdtrLimit] = BigInt(s.gdtr.limit);
      vw[V.idtrBase] = s.idtr.base;
      vw[V.idtrLimit] = BigInt(s.idtr.limit);
      MSR_NAMES.forEach((n, i) => (vw[V.msr + i] = s.msr[n]));
      vw[V.activity] = BigInt(s.activity);
      vw[V.wallUs] = BigInt(Math.round(tscWallMs * 1000));
      xsave.set(s.xsave);
    },
    vcpuSet: () => {
      const s = cloneVcpu(m.vcpu);
      GPR_NAMES.forEach((n, i) => (s.gpr[n] = vw[V.gpr + i]!));
      s.rip = vw[V.rip]!;
      s.rflags = vw[V.rflags]!;
      s.cr0 = vw[V.cr0]!;
      s.cr2 = vw[V.cr2]!;
      s.cr3 = vw[V.cr3]!;
      s.cr4 = vw[V.cr4]!;
      s.cr8 = vw[V.cr8]!;
      s.tsc = vw[V.tsc]!;
      SEGMENT_NAMES.forEach((n, i) => {
        s.seg[n] = { selector: Number(vw[V.seg + 4 * i]), limit: Number(vw[V.seg + 4 * i + 1]), attributes: Number(vw[V.seg + 4 * i + 2]), base: vw[V.seg + 4 * i + 3]! };
      });
      s.gdtr = { base: vw[V.gdtrBase]!, limit: Number(vw[V.gdtrLimit]) };
      s.idtr = { base: vw[V.idtrBase]!, limit: Number(vw[V.idtrLimit]) };
      MSR_NAMES.forEach((n, i) => (s.msr[n] = vw[V.msr + i]!));
      s.activity = Number(vw[V.activity]);
      s.xsave = new Uint8Array(xsave);
      // the core validated the state (decode_vcpu mirrors checkVcpuState); a mismatch is a bug
      const problem = checkVcpuState(s as VcpuState);
      if (problem) throw new Error(`vCPU state from the core: ${problem}`);
      m.setVcpu(s, Number(vw[V.wallUs]) / 1000);
    },
    dirty: () => m.mem!.dirtyMap(),
  };
  // The hypervisor's traps for the native agent's shadows: the same ports as
  // the TypeScript agent's (src/sim/devices.ts), after the device handled the access.
  const kinds = new Set(m.devices.map((d) => d.kind));
  for (const d of m.devices) {
    if (!d.shadow || (d.kind !== 'pic' && d.kind !== 'pit')) continue;
    for (const [a, b] of d.shadow.ports) m.bus.trap(a, b, (acc) => native.portTrap(acc.dir === 'out', acc.port, acc.size, acc.value));
  }
  if (kinds.has('pic')) m.onInterruptAcknowledge = (ev) => (ev.slave === undefined ? native.inta(ev.master) : native.inta(ev.master, ev.slave));
  const link = native.start({
    name: o.name,
    ramCapacity: o.ramCapacity,
    keyHex: o.keyHex,
    ifname: o.link.ifname,
    ...(o.link.netns ? { netns: o.link.netns } : {}),
    ...(o.link.loss ? { loss: o.link.loss } : {}),
    trapPic: kinds.has('pic'),
    trapPit: kinds.has('pit'),
    devices: m.devices.map((d) => (d.mmioBase !== undefined ? { kind: d.kind, name: d.name, mmioBase: d.mmioBase } : { kind: d.kind, name: d.name })),
    host,
  });
  return { ...link, stats: () => native.stats(), stop: () => native.stop() };
}
