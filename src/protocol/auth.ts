import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const NONCE_BYTES = 32;

/**
 * Challenge-response with the per-cluster key, in both directions: the agent
 * proves it holds the key too, so a coordinator never streams a guest to an
 * impostor. MAC = HMAC-SHA256(key, label | agent challenge | client nonce | node).
 */
export function authMac(key: Uint8Array, label: 'client' | 'agent', challenge: Uint8Array, nonce: Uint8Array, node: string): Buffer {
  return createHmac('sha256', key).update(`baremig-v1 ${label}\0`).update(challenge).update(nonce).update(node).digest();
}

export function macEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

/** Parses a cluster key given as hex (at least 16 bytes). */
export function parseKey(hex: string): Buffer | null {
  const s = hex.trim();
  if (!/^[0-9a-fA-F]+$/.test(s) || s.length % 2 !== 0 || s.length < 32) return null;
  return Buffer.from(s, 'hex');
}
