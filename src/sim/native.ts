import { createRequire } from 'node:module';

/**
 * The simulator's native accelerator (native/simAccel.c, built by node-gyp at
 * install): the page stream's packing and unpacking loops, page hashing for
 * the memory digest, and backing a node's physical RAM. It is required, not optional: every node of a cluster must compute the
 * same digest, so there is no slower stand-in that could hash differently.
 */
export interface SimAccel {
  refreshDigest(ram: Uint8Array, stalePage: Uint8Array, staleGroup: Uint8Array, pageHash: Uint8Array, groupHash: Uint8Array, firstGroup: number, endGroup: number): number;
  xxh64(bytes: Uint8Array): bigint;
  packPages(ram: Uint8Array, bitmap: Uint8Array | null, fromPage: number, endPage: number, out: Uint8Array, outOffset: number, pageHash: Uint8Array, stalePage: Uint8Array, stats: Float64Array): void;
  zeroPageHash(): bigint;
  populate(buf: Uint8Array): boolean;
  unpackFrames(chunk: Uint8Array, offset: number, ram: Uint8Array, pageHash: Uint8Array, stalePage: Uint8Array, staleGroup: Uint8Array, stats: Float64Array): void;
}

let cached: SimAccel | null = null;

export function simAccel(): SimAccel {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  try {
    // src/sim and dist/sim are both two levels below the package root.
    cached = require('../../build/Release/sim_accel.node') as SimAccel;
  } catch (e) {
    throw new Error(`baremig's native accelerator is not built (${(e as Error).message.split('\n')[0]}): run 'npm rebuild' (needs make, g++ and Node's headers)`);
  }
  return cached;
}
