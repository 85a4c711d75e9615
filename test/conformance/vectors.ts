/**
 * Shared test vectors that keep the native agent (hypervisor/) byte-identical
 * with the TypeScript side where both compute the same thing:
 *
 *   xxh64.json   XXH64 (seed 0) of inputs of every tail length (native/simAccel.c,
 *                cross-checked against xxhash-wasm)
 *   digest.json  the memory digest of GuestMemory after a list of writes
 *   pit.json     the 8254 shadow (src/devices/pit/shadow.ts) after random access
 *                sequences, as the agent's `shadow` reply encodes it (msgpack)
 *   pic.json     the same for the 8259 pair (src/devices/pic/shadow.ts), INTA included
 *   agent-shadow.json  the agent's whole `shadow` reply on a node trapping both chips
 *
 * The C test hypervisor/test/test_vectors.c replays them; vectors.test.ts
 * regenerates them and fails if the committed files differ. Everything is
 * deterministic (fixed seeds). To rewrite the files:
 *
 *   npx tsx test/conformance/vectors.ts --write
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import xxhashWasm from 'xxhash-wasm';
import type { PicShadow, PicShadowInput } from '../../src/devices/pic/shadow.js';
import { initialPicShadow, reducePicShadow } from '../../src/devices/pic/shadow.js';
import type { PitShadow } from '../../src/devices/pit/shadow.js';
import { initialPitShadow, reducePitShadow } from '../../src/devices/pit/shadow.js';
import { encode } from '../../src/protocol/codec.js';
import type { PortAccess } from '../../src/sim/bus.js';
import { GuestMemory } from '../../src/sim/guestMemory.js';
import { simAccel } from '../../src/sim/native.js';

export const VECTOR_DIR = fileURLToPath(new URL('../../hypervisor/test/vectors/', import.meta.url));

/** mulberry32: the generator of the random sequences (only the TS side needs it). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The byte pattern of a write in digest.json, which the C test regenerates: x = x*1103515245+12345 (mod 2^32), byte = x>>24. */
export function lcgBytes(seed: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  let x = seed >>> 0;
  for (let i = 0; i < len; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const hex64 = (v: bigint) => v.toString(16).padStart(16, '0');

export async function xxh64Vectors(): Promise<unknown> {
  const { h64Raw } = await xxhashWasm();
  const accel = simAccel();
  const r = rng(64);
  const lens = [...Array.from({ length: 72 }, (_, i) => i), 100, 255, 256, 1000, 2048, 4096, 4097, 8191];
  const inputs: Buffer[] = [Buffer.from('abc'), ...lens.map((n) => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256))))];
  const cases = inputs.map((b) => {
    const h = accel.xxh64(b);
    if (h !== h64Raw(b, 0n)) throw new Error(`simAccel.xxh64 and xxhash-wasm disagree on ${b.length} bytes`);
    return { hex: b.toString('hex'), hash: hex64(h) };
  });
  return { about: 'XXH64 seed 0 (simAccel.xxh64 = xxhash-wasm h64Raw)', zeroPage: hex64(accel.zeroPageHash()), cases };
}

type DigestWrite = { addr: number; len: number; seed: number };

export async function digestVectors(): Promise<unknown> {
  const MiB = 1 << 20;
  const cases: Array<{ ramBytes: number; writes: DigestWrite[]; hex: string; rehashedPages: number }> = [];
  const plans: Array<{ ramBytes: number; writes: DigestWrite[] }> = [
    { ramBytes: MiB, writes: [] },
    { ramBytes: 2 * MiB, writes: [{ addr: 0, len: 1, seed: 1 }] },
    {
      ramBytes: 4 * MiB,
      writes: [
        { addr: 0, len: 4096, seed: 2 },
        { addr: MiB + 123, len: 5000, seed: 3 },
        { addr: 3 * MiB - 7, len: 14, seed: 4 }, // across a group boundary
        { addr: 2 * MiB, len: MiB, seed: 5 },
        { addr: 2 * MiB + 8192, len: 4096, seed: 0 }, // seed 0: a run of zeros over written data
        { addr: 4 * MiB - 1, len: 1, seed: 6 },
      ],
    },
    { ramBytes: 3 * MiB, writes: [{ addr: 4096, len: 4096, seed: 0 }] }, // zeros onto zeros: the page stays a zero page
  ];
  for (const p of plans) {
    const mem = new GuestMemory(p.ramBytes);
    for (const w of p.writes) mem.writeBytes(w.addr, w.seed === 0 ? Buffer.alloc(w.len) : lcgBytes(w.seed, w.len));
    const d = await mem.digest();
    cases.push({ ...p, hex: d.hex, rehashedPages: d.rehashedPages });
  }
  return { about: 'GuestMemory.digest() after writes (seed 0 = zeros, else lcgBytes(seed, len)) on fresh RAM', cases };
}

type Checkpoint = { after: number; msgpack: string };
type Sequence<A> = { accesses: A[]; expect: Checkpoint[] };

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}
const sizes = [1, 1, 1, 1, 1, 1, 2, 4] as const;
/** A 2- or 4-byte access whose low byte is `byte` (wide accesses split over consecutive ports). */
function widen(r: () => number, byte: number, size: number): number {
  if (size === 1) return byte;
  const wide = (byte | (Math.floor(r() * 0x1000000) << 8)) >>> 0;
  return size === 2 ? wide & 0xffff : wide;
}

function pitAccess(r: () => number): PortAccess {
  const out = r() < 0.7;
  const port = pick(r, [0x40, 0x41, 0x42, 0x42, 0x43, 0x43, 0x43, 0x61, 0x61, 0x3f, 0x44]);
  const size = pick(r, sizes);
  let byte: number;
  if (port === 0x43) {
    // control words of every kind: program (mode/RW/BCD), latch, read-back
    const kind = r();
    if (kind < 0.5) byte = (Math.floor(r() * 3) << 6) | (Math.floor(r() * 4) << 4) | (Math.floor(r() * 8) << 1) | (r() < 0.2 ? 1 : 0);
    else if (kind < 0.65) byte = Math.floor(r() * 3) << 6; // counter latch
    else if (kind < 0.85) byte = 0xc0 | (Math.floor(r() * 4) << 4) | (Math.floor(r() * 8) << 1); // read-back
    else byte = Math.floor(r() * 256);
  } else byte = r() < 0.3 ? pick(r, [0, 1, 2, 0xff, 0x10, 0x99]) : Math.floor(r() * 256);
  const value = widen(r, byte, size);
  return { dir: out ? 'out' : 'in', port, size, value: out ? value : Math.floor(r() * 2 ** (8 * size)) >>> 0 };
}

function picAccess(r: () => number): PicShadowInput {
  const k = r();
  if (k < 0.12) {
    const lv = () => (r() < 0.75 ? 0x80 | Math.floor(r() * 8) : 0);
    const master = lv();
    return r() < 0.4 ? { dir: 'inta', master, slave: lv() } : { dir: 'inta', master };
  }
  const port = pick(r, [0x20, 0x20, 0x21, 0x21, 0xa0, 0xa0, 0xa1, 0xa1, 0x4d0, 0x4d1, 0x1f, 0x22]);
  const size = pick(r, sizes);
  const cmd = port === 0x20 || port === 0xa0;
  let byte: number;
  if (r() < 0.7 && cmd) {
    byte = pick(r, [0x11, 0x13, 0x19, 0x1b, 0x10, 0x12, 0x0a, 0x0b, 0x0c, 0x68, 0x48, 0x20, 0xa0, 0x80, 0x00, 0x40]);
    if (r() < 0.4) byte = pick(r, [0x60, 0xc0, 0xe0]) | Math.floor(r() * 8);
  } else if (r() < 0.5 && !cmd) byte = pick(r, [0x08, 0x70, 0x04, 0x02, 0x01, 0x03, 0x13, 0xff, 0x00, 0xfb]);
  else byte = Math.floor(r() * 256);
  const dir = r() < 0.65 ? 'out' : 'in';
  if (dir === 'in' && size === 1 && r() < 0.5) byte = r() < 0.7 ? 0x80 | Math.floor(r() * 8) : 0; // poll words
  const value = widen(r, byte, size);
  return { dir, port, size, value };
}

function sequences<S, A>(seed: number, count: number, init: () => S, reduce: (s: S, a: A) => S, gen: (r: () => number) => A, lengths: () => number): Array<Sequence<A>> {
  const r = rng(seed);
  const out: Array<Sequence<A>> = [];
  for (let i = 0; i < count; i++) {
    const n = lengths();
    let s = init();
    const accesses: A[] = [];
    const expect: Checkpoint[] = [{ after: 0, msgpack: encode(s).toString('hex') }];
    for (let k = 0; k < n; k++) {
      const a = gen(r);
      accesses.push(a);
      s = reduce(s, a);
      if ((k + 1) % 50 === 0 || k === n - 1) expect.push({ after: k + 1, msgpack: encode(s).toString('hex') });
    }
    out.push({ accesses, expect });
  }
  return out;
}

export function pitVectors(): unknown {
  const r = rng(8254);
  return {
    about: 'reducePitShadow over random port accesses from initialPitShadow(); msgpack = codec.encode(shadow) after `after` accesses',
    sequences: sequences<PitShadow, PortAccess>(82540, 120, initialPitShadow, reducePitShadow, pitAccess, () => 1 + Math.floor(r() * (r() < 0.1 ? 200 : 50))),
  };
}

export function picVectors(): unknown {
  const r = rng(8259);
  return {
    about: 'reducePicShadow over random port accesses and INTA events from initialPicShadow(); msgpack = codec.encode(shadow) after `after` inputs',
    sequences: sequences<PicShadow, PicShadowInput>(82590, 120, initialPicShadow, reducePicShadow, picAccess, () => 1 + Math.floor(r() * (r() < 0.1 ? 200 : 50))),
  };
}

const inRanges = (port: number, ranges: ReadonlyArray<readonly [number, number]>) => ranges.some(([a, b]) => port >= a && port <= b);

/**
 * The agent's whole `shadow` reply on a node that traps both chips: the
 * simulator's Machine traps per port (src/sim/devices.ts ranges; an access is
 * trapped when its first port is) and replies {t:'ok', id, shadow: {pic, pit}}
 * (src/sim/agent/server.ts), encoded by the codec.
 */
export function agentShadowVectors(): unknown {
  const r = rng(7700);
  const picPorts = [[0x20, 0x21], [0xa0, 0xa1], [0x4d0, 0x4d1]] as const;
  const pitPorts = [[0x40, 0x43], [0x61, 0x61]] as const;
  const sequences = [];
  for (let i = 0; i < 24; i++) {
    let pic = initialPicShadow();
    let pit = initialPitShadow();
    const accesses: PicShadowInput[] = [];
    const n = 1 + Math.floor(r() * 120);
    for (let k = 0; k < n; k++) {
      const a = r() < 0.5 ? picAccess(r) : pitAccess(r);
      accesses.push(a);
      if (a.dir === 'inta') pic = reducePicShadow(pic, a);
      else if (inRanges(a.port, picPorts)) pic = reducePicShadow(pic, a);
      else if (inRanges(a.port, pitPorts)) pit = reducePitShadow(pit, a);
    }
    const id = 1 + Math.floor(r() * 70000);
    sequences.push({ accesses, id, reply: encode({ t: 'ok', id, shadow: { pic, pit } }).toString('hex') });
  }
  return { about: "the `shadow` reply (codec.encode({t:'ok', id, shadow: {pic, pit}})) of a node trapping both chips after these guest accesses", sequences };
}

export async function allVectors(): Promise<Record<string, string>> {
  const files: Record<string, unknown> = {
    'xxh64.json': await xxh64Vectors(),
    'digest.json': await digestVectors(),
    'pit.json': pitVectors(),
    'pic.json': picVectors(),
    'agent-shadow.json': agentShadowVectors(),
  };
  return Object.fromEntries(Object.entries(files).map(([k, v]) => [k, `${JSON.stringify(v, null, 0)}\n`]));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const files = await allVectors();
  const write = process.argv.includes('--write');
  for (const [name, text] of Object.entries(files)) {
    const path = join(VECTOR_DIR, name);
    let same = false;
    try {
      same = readFileSync(path, 'utf8') === text;
    } catch {
      /* new file */
    }
    if (write && !same) writeFileSync(path, text);
    console.log(`${name}: ${text.length} bytes, ${same ? 'unchanged' : write ? 'written' : 'differs (run with --write)'}`);
  }
}
