import { randomBytes } from 'node:crypto';
import xxhashWasm from 'xxhash-wasm';
import { describe, expect, it } from 'vitest';
import { simAccel } from './native.js';

describe('native XXH64 matches an independent implementation', () => {
  it('on the specification vectors and random inputs of every tail length', async () => {
    const { h64Raw } = await xxhashWasm();
    const accel = simAccel();
    expect(accel.xxh64(new Uint8Array(0))).toBe(0xef46db3751d8e999n);
    expect(accel.xxh64(Buffer.from('abc'))).toBe(0x44bc2cf5ad770999n);
    for (let len = 0; len < 80; len++) {
      const b = randomBytes(len);
      expect(accel.xxh64(b)).toBe(h64Raw(b, 0n));
    }
    for (const len of [4096, 2048, 4096 * 3 + 7]) {
      const b = randomBytes(len);
      expect(accel.xxh64(b)).toBe(h64Raw(b, 0n));
    }
  });

  it('refuses mismatched arrays instead of reading out of bounds', () => {
    const accel = simAccel();
    const ram = new Uint8Array(1 << 20);
    expect(() => accel.refreshDigest(ram, new Uint8Array(256), new Uint8Array(1), new Uint8Array(8), new Uint8Array(8), 0, 2)).toThrow(/do not match/);
    expect(() => accel.refreshDigest(ram, new Uint8Array(255), new Uint8Array(1), new Uint8Array(256 * 8), new Uint8Array(8), 0, 1)).toThrow(/do not match/);
  });
});
