import { createRequire } from 'node:module';

/**
 * The simulator's native accelerator (native/simAccel.c, built by node-gyp at
 * install): the page stream's sender and receiver (each on a thread of its own), page hashing for
 * the memory digest, and backing a node's physical RAM. It is required, not optional: every node of a cluster must compute the
 * same digest, so there is no slower stand-in that could hash differently.
 */
export interface SimAccel {
  refreshDigest(ram: Uint8Array, stalePage: Uint8Array, staleGroup: Uint8Array, pageHash: Uint8Array, groupHash: Uint8Array, firstGroup: number, endGroup: number): number;
  xxh64(bytes: Uint8Array): bigint;
  zeroPageHash(): bigint;
  populate(buf: Uint8Array): boolean;
  /** into |= from (0/1 marks), then the number of marked bytes in into. */
  orCount(into: Uint8Array, from?: Uint8Array | null): number;
  sendPages(fd: number, ram: Uint8Array, bitmap: Uint8Array | null, pageHash: Uint8Array, stalePage: Uint8Array, knownZero: Uint8Array, rate: number, live: Float64Array, done: StreamDone): StreamHandle;
  receivePages(fd: number, token: Uint8Array, ram: Uint8Array, pageHash: Uint8Array, stalePage: Uint8Array, staleGroup: Uint8Array, knownZero: Uint8Array, live: Float64Array, done: StreamDone): StreamHandle;
  /** Stops a stream; when it returns, the stream's thread writes no more guest RAM (its `done` still follows). */
  cancelStream(h: StreamHandle): void;
}

/** A running native page stream (native/pageStreamIo.c). */
export type StreamHandle = { readonly __nativeStream: unique symbol };

/** How a native page stream ended (native/pageStreamIo.c). */
export const enum StreamStatus {
  /** send: the round is sent; receive: the sender closed the stream. */
  Ok = 0,
  Cancelled = 1,
  /** receive: a page outside guest RAM (NAK sent). */
  BadPage = 2,
  /** receive: bad opening, token, frame type or round count (NAK sent). */
  BadFrame = 3,
  /** A socket error; detail = errno. */
  Io = 4,
}

/** Called on the main thread when a native page stream's thread has ended. */
export type StreamDone = (status: StreamStatus, detail: number, reason: string) => void;

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
