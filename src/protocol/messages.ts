import { z } from 'zod';
import type { IoOp, IoResult } from '../devices/io.js';
import { MAX_RAM_BYTES } from '../sim/guestMemory.js';
import type { VcpuState } from '../sim/vcpu.js';

/** Protocol version; the first message (hello) carries it and a mismatch is refused. */
export const PROTOCOL_VERSION = 1;
export const MAX_MEM_IO = 1 << 20;
export const MAX_PROGRAM_OPS = 65536;

const id = z.number().int().min(0).max(0xffffffff);
const u32 = z.number().int().min(0).max(0xffffffff);
const addr = z.number().int().min(0).max(MAX_RAM_BYTES);
const bytes = (max: number, exact?: number) =>
  z.custom<Uint8Array>((v) => v instanceof Uint8Array, { message: 'must be bytes' }).refine((b) => b.length <= max && (exact === undefined || b.length === exact), { message: exact !== undefined ? `must be ${exact} bytes` : `at most ${max} bytes` });
const size = z.union([z.literal(1), z.literal(2), z.literal(4)]);

export const ioOpSchema: z.ZodType<IoOp> = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('in'), port: z.number().int().min(0).max(0xffff), size }),
  z.strictObject({ op: z.literal('out'), port: z.number().int().min(0).max(0xffff), size, value: u32 }),
  z.strictObject({ op: z.literal('mmioRead'), addr: z.number().int().min(0).max(2 ** 52), size }),
  z.strictObject({ op: z.literal('mmioWrite'), addr: z.number().int().min(0).max(2 ** 52), size, value: u32 }),
  z.strictObject({ op: z.literal('memRead'), addr, len: z.number().int().min(0).max(MAX_MEM_IO) }),
  z.strictObject({ op: z.literal('memWrite'), addr, data: bytes(MAX_MEM_IO) }),
  z.strictObject({ op: z.literal('waitUntil'), space: z.enum(['io', 'mmio']), addr: z.number().int().min(0).max(2 ** 52), size, mask: u32, expect: u32, timeoutUs: z.number().int().min(0).max(5_000_000) }),
  z.strictObject({ op: z.literal('delay'), us: z.number().min(0).max(5_000_000) }),
  z.strictObject({ op: z.literal('injectFrame'), device: z.string().max(64), frame: bytes(16384) }),
]) as unknown as z.ZodType<IoOp>;

const u64 = z.bigint().min(0n).max((1n << 64n) - 1n);

/** Requests, validated field by field at the agent before anything happens. */
export const requestSchema = z.discriminatedUnion('t', [
  z.strictObject({ t: z.literal('hello'), id, v: z.number().int(), role: z.string().max(64).optional() }),
  z.strictObject({ t: z.literal('auth'), id, nonce: bytes(32, 32), mac: bytes(32, 32) }),
  z.strictObject({ t: z.literal('state'), id }),
  z.strictObject({ t: z.literal('boot'), id, ramBytes: addr, spec: z.strictObject({ modules: z.array(z.strictObject({ name: z.string().max(32), config: z.unknown() })).max(16) }) }),
  z.strictObject({ t: z.literal('prepareIncoming'), id, ramBytes: addr, devices: z.array(z.string().max(32)).max(32) }),
  z.strictObject({ t: z.literal('dirtyLogStart'), id }),
  z.strictObject({ t: z.literal('dirtyLogSync'), id }),
  z.strictObject({ t: z.literal('dirtyLogStop'), id }),
  z.strictObject({
    t: z.literal('streamPages'),
    id,
    which: z.enum(['all', 'dirty']),
    peer: z.strictObject({ host: z.string().min(1).max(255), port: z.number().int().min(1).max(65535), token: bytes(32, 32) }),
    bandwidth: z.number().positive().max(1e12).optional(),
  }),
  z.strictObject({ t: z.literal('streamStatus'), id }),
  z.strictObject({ t: z.literal('memRead'), id, addr, len: z.number().int().min(0).max(MAX_MEM_IO) }),
  z.strictObject({ t: z.literal('memWrite'), id, addr, data: bytes(MAX_MEM_IO) }),
  z.strictObject({ t: z.literal('pause'), id }),
  /** run: false keeps a guest that was migrated stopped, stopped (it arrives paused). */
  z.strictObject({ t: z.literal('resume'), id, run: z.boolean().optional() }),
  z.strictObject({ t: z.literal('vcpuGet'), id }),
  z.strictObject({ t: z.literal('vcpuSet'), id, vcpu: z.unknown(), wallMs: z.number().min(0).max(1e15) }),
  z.strictObject({ t: z.literal('runProgram'), id, program: z.array(ioOpSchema).max(MAX_PROGRAM_OPS) }),
  z.strictObject({ t: z.literal('shadow'), id }),
  z.strictObject({ t: z.literal('digest'), id }),
  z.strictObject({ t: z.literal('release'), id }),
]);

export type Request = z.infer<typeof requestSchema>;
export type RequestType = Request['t'];
export type RequestOf<T extends RequestType> = Extract<Request, { t: T }>;
export type RequestBody<T extends RequestType> = Omit<RequestOf<T>, 't' | 'id'>;

export type GuestRunState = 'none' | 'running' | 'paused' | 'incoming' | 'released';

export type { DeviceDescriptor } from '../devices/registry.js';
import type { DeviceDescriptor } from '../devices/registry.js';

/** Answers, by request type. */
export interface Responses {
  hello: { node: string; v: number; challenge: Uint8Array };
  auth: { mac: Uint8Array };
  state: { node: string; guest: GuestRunState; ramBytes: number; ramCapacity: number; devices: DeviceDescriptor[]; dirtyLog: boolean };
  boot: Record<string, never>;
  prepareIncoming: { port: number; token: Uint8Array };
  dirtyLogStart: Record<string, never>;
  dirtyLogSync: { dirtyPages: number; intervalMs: number };
  dirtyLogStop: Record<string, never>;
  streamPages: { pages: number; zeroPages: number; wireBytes: number; ms: number };
  streamStatus: { active: boolean; pages: number; wireBytes: number; ms: number };
  memRead: { data: Uint8Array };
  memWrite: Record<string, never>;
  pause: { guestNs: number; wallMs: number };
  resume: Record<string, never>;
  vcpuGet: { vcpu: VcpuState; wallMs: number };
  vcpuSet: Record<string, never>;
  runProgram: IoResult;
  shadow: { shadow: Record<string, unknown> };
  digest: { hex: string; rehashedPages: number; ms: number };
  release: Record<string, never>;
}

export interface ErrorReply {
  t: 'err';
  id: number;
  code: string;
  message: string;
}
