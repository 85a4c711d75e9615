import { describe, expect, it } from 'vitest';
import { parseDuration, parseRate, parseSize } from './size.js';

describe('parseSize', () => {
  it.each([
    ['4G', 4 * 1024 ** 3],
    ['512M', 512 * 1024 ** 2],
    ['1GiB', 1024 ** 3],
    ['64k', 65536],
    ['4096', 4096],
  ])('%s', (s, n) => expect(parseSize(s)).toBe(n));
  it('rejects junk', () => {
    expect(parseSize('4X')).toBeNull();
    expect(parseSize('-1G')).toBeNull();
    expect(parseSize('')).toBeNull();
  });
});

describe('parseRate', () => {
  it('bits like tc, bytes with B/s', () => {
    expect(parseRate('1gbit')).toBe(125e6);
    expect(parseRate('100mbit')).toBe(12.5e6);
    expect(parseRate('125MB/s')).toBe(125e6);
    expect(parseRate('1e9')).toBe(125e6);
    expect(parseRate('fast')).toBeNull();
  });
});

describe('parseDuration', () => {
  it('units', () => {
    expect(parseDuration('30s')).toBe(30000);
    expect(parseDuration('5m')).toBe(300000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('2')).toBe(2000);
    expect(parseDuration('soon')).toBeNull();
  });
});
