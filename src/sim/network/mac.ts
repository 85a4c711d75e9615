/**
 * MAC addresses on the service network's data path: a 48-bit address as a
 * plain number (exact in a double), so the switch's table lookups allocate
 * nothing per frame.
 */

/** The 48-bit address at `off` as a number. */
export function macAt(f: Uint8Array, off: number): number {
  return ((f[off]! << 8) | f[off + 1]!) * 4294967296 + (((f[off + 2]! << 24) | (f[off + 3]! << 16) | (f[off + 4]! << 8) | f[off + 5]!) >>> 0);
}

/** Group bit (I/G): broadcast and multicast destinations. */
export function isGroupMac(f: Uint8Array, off: number): boolean {
  return (f[off]! & 1) === 1;
}

export function macToString(mac: number | ArrayLike<number>): string {
  const b = typeof mac === 'number' ? macBytes(mac) : Array.from(mac);
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function macBytes(mac: number): number[] {
  const hi = Math.floor(mac / 4294967296);
  const lo = mac >>> 0;
  return [(hi >> 8) & 0xff, hi & 0xff, lo >>> 24, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff];
}

/** "52:54:00:12:34:56" (or with '-') to bytes. */
export function parseMac(s: string): number[] {
  const parts = s.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw new RangeError(`not a MAC address: '${s}'`);
  return parts.map((p) => parseInt(p, 16));
}

/** A stable, locally administered unicast MAC derived from a name (a node's EEPROM address). */
export function macFromName(name: string, prefix = 0x02): number[] {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return [(prefix | 0x02) & 0xfe, 0xba, h >>> 24, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff];
}
