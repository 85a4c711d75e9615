/**
 * The x86-64 architectural state a hypervisor moves for one vCPU: what a
 * VMCS guest-state area plus XSAVE holds. 64-bit values travel as bigint.
 */
export interface Segment {
  selector: number;
  base: bigint;
  limit: number;
  /** Access rights as in the VMCS (type, S, DPL, P, AVL, L, D/B, G). */
  attributes: number;
}

export interface DescriptorTable {
  base: bigint;
  limit: number;
}

export const GPR_NAMES = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'rsp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;
export type GprName = (typeof GPR_NAMES)[number];
export const SEGMENT_NAMES = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'ldtr', 'tr'] as const;
export type SegmentName = (typeof SEGMENT_NAMES)[number];
export const MSR_NAMES = ['efer', 'star', 'lstar', 'cstar', 'sfmask', 'kernelGsBase', 'sysenterCs', 'sysenterEsp', 'sysenterEip', 'pat', 'tscAux'] as const;
export type MsrName = (typeof MSR_NAMES)[number];

/** Size of the XSAVE area we move (legacy 512 + header 64 + AVX 256). */
export const XSAVE_BYTES = 832;

export interface VcpuState {
  gpr: Record<GprName, bigint>;
  rip: bigint;
  rflags: bigint;
  seg: Record<SegmentName, Segment>;
  gdtr: DescriptorTable;
  idtr: DescriptorTable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  msr: Record<MsrName, bigint>;
  /** Guest TSC at the moment the state was read (the guest's clock). */
  tsc: bigint;
  /** FPU/SSE/AVX state as XSAVE bytes. */
  xsave: Uint8Array;
  /** Interrupt shadow / activity state (0 active, 1 HLT). */
  activity: number;
}

/** RFLAGS.IF: interrupts enabled. */
export const RFLAGS_IF = 1n << 9n;

/** The state of a vCPU right after the simulated firmware hands over to a 64-bit kernel. */
export function resetVcpu(): VcpuState {
  const seg = (selector: number, attributes: number): Segment => ({ selector, base: 0n, limit: 0xffffffff, attributes });
  const gpr = Object.fromEntries(GPR_NAMES.map((n) => [n, 0n])) as Record<GprName, bigint>;
  const msr = Object.fromEntries(MSR_NAMES.map((n) => [n, 0n])) as Record<MsrName, bigint>;
  msr.efer = 0xd01n; // SCE | LME | LMA | NXE
  msr.pat = 0x0007040600070406n;
  return {
    gpr,
    rip: 0x100000n,
    rflags: 0x2n,
    seg: {
      cs: seg(0x10, 0xa09b),
      ds: seg(0x18, 0xc093),
      es: seg(0x18, 0xc093),
      fs: seg(0, 0x1c000),
      gs: seg(0, 0x1c000),
      ss: seg(0x18, 0xc093),
      ldtr: { selector: 0, base: 0n, limit: 0xffff, attributes: 0x10082 },
      tr: { selector: 0x28, base: 0n, limit: 0x67, attributes: 0x8b },
    },
    gdtr: { base: 0x1000n, limit: 0x37 },
    idtr: { base: 0x2000n, limit: 0xfff },
    cr0: 0x80050033n,
    cr2: 0n,
    cr3: 0x3000n,
    cr4: 0x6b0n,
    cr8: 0n,
    msr,
    tsc: 0n,
    xsave: new Uint8Array(XSAVE_BYTES),
    activity: 0,
  };
}

export function cloneVcpu(s: VcpuState): VcpuState {
  return {
    ...s,
    gpr: { ...s.gpr },
    seg: Object.fromEntries(SEGMENT_NAMES.map((n) => [n, { ...s.seg[n] }])) as Record<SegmentName, Segment>,
    gdtr: { ...s.gdtr },
    idtr: { ...s.idtr },
    msr: { ...s.msr },
    xsave: new Uint8Array(s.xsave),
  };
}

const U64 = (1n << 64n) - 1n;

/** Validates a vCPU state received from the network. Returns an error message or null. */
export function checkVcpuState(x: unknown): string | null {
  if (typeof x !== 'object' || x === null) return 'vcpu state must be an object';
  const s = x as Partial<VcpuState>;
  const isU64 = (v: unknown): boolean => typeof v === 'bigint' && v >= 0n && v <= U64;
  const isU32 = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
  if (typeof s.gpr !== 'object' || s.gpr === null) return 'gpr missing';
  for (const n of GPR_NAMES) if (!isU64(s.gpr[n])) return `gpr.${n} must be a 64-bit unsigned integer`;
  for (const k of ['rip', 'rflags', 'cr0', 'cr2', 'cr3', 'cr4', 'cr8', 'tsc'] as const) if (!isU64(s[k])) return `${k} must be a 64-bit unsigned integer`;
  if (typeof s.seg !== 'object' || s.seg === null) return 'seg missing';
  for (const n of SEGMENT_NAMES) {
    const g = s.seg[n];
    if (typeof g !== 'object' || g === null) return `seg.${n} missing`;
    if (!isU32(g.selector) || g.selector > 0xffff) return `seg.${n}.selector out of range`;
    if (!isU64(g.base) || !isU32(g.limit) || !isU32(g.attributes)) return `seg.${n} fields out of range`;
  }
  for (const t of ['gdtr', 'idtr'] as const) {
    const d = s[t];
    if (typeof d !== 'object' || d === null || !isU64(d.base) || !isU32(d.limit) || d.limit > 0xffff) return `${t} out of range`;
  }
  if (typeof s.msr !== 'object' || s.msr === null) return 'msr missing';
  for (const n of MSR_NAMES) if (!isU64(s.msr[n])) return `msr.${n} must be a 64-bit unsigned integer`;
  if (!(s.xsave instanceof Uint8Array) || s.xsave.length !== XSAVE_BYTES) return `xsave must be ${XSAVE_BYTES} bytes`;
  if (s.activity !== 0 && s.activity !== 1) return 'activity must be 0 or 1';
  return null;
}
