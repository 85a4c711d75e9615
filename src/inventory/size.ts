/** Parses sizes like 4G, 512M, 1GiB, 4096 (bytes; K/M/G/T are binary, as RAM is). */
export function parseSize(s: string | number): number | null {
  if (typeof s === 'number') return Number.isFinite(s) && s >= 0 ? Math.floor(s) : null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(s);
  if (!m) return null;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * mult);
}

/**
 * Parses a link rate into bytes per second: `1gbit`, `100mbit`, `125MB/s`,
 * `1.5GB/s`, `1e9` (bits/s when a bare number, like tc).
 */
export function parseRate(s: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmgt]?)(bit|bps|b\/s|B\/s|Bps)?\s*$/i.exec(s);
  if (!m) return null;
  const n = Number(m[1]);
  const mult = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  const unit = m[3] ?? '';
  // Capital B means bytes (125MB/s, 125MBps); bit, b/s, bps and a bare number mean bits, as tc reads them.
  const bytes = unit.startsWith('B') ? n * mult : (n * mult) / 8;
  return bytes > 0 ? bytes : null;
}

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/** Parses durations like 30s, 5m, 1h, 500ms, 90 (seconds). Returns ms. */
export function parseDuration(s: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(s);
  if (!m) return null;
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's').toLowerCase() as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * mult;
}
