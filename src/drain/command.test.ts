import { describe, expect, it } from 'vitest';
import { givenOptions, withDefaults } from './command.js';
import { DEFAULT_DRAIN_OPTIONS } from './types.js';

const all = () => true;

describe('drain flags', () => {
  it('turn into options; only flags given on the command line override (for --resume)', () => {
    const f = { parallel: '3', perLink: '1', timeout: '10m', onTimeout: 'force', retries: '0', retryDelay: '200ms', to: ['n5,n6', 'n7'], hookPre: 'true', downtimeLimit: '100', bandwidth: '1gbit', migrationTimeout: '90s', maxRounds: '30' };
    const o = givenOptions(f, all);
    expect(o).toMatchObject({ parallel: 3, perLink: 1, timeoutMs: 600_000, onTimeout: 'force', retries: 0, retryDelayMs: 200, to: ['n5', 'n6', 'n7'], hooks: { pre: 'true' } });
    expect(o.migration).toMatchObject({ downtimeLimitMs: 100, bandwidth: 125e6, timeoutMs: 90_000, maxRounds: 30 });
    // Defaults commander filled in are not "given".
    expect(givenOptions(f, (k) => k === 'parallel')).toEqual({ parallel: 3 });
    const d = withDefaults({ parallel: 4 });
    expect(d).toMatchObject({ ...DEFAULT_DRAIN_OPTIONS, parallel: 4 });
  });
  it('bad values are usage errors', () => {
    expect(() => givenOptions({ parallel: '0' }, all)).toThrow(/--parallel must be a whole number ≥ 1/);
    expect(() => givenOptions({ perLink: '1.5' }, all)).toThrow(/--per-link/);
    expect(() => givenOptions({ timeout: 'soon' }, all)).toThrow(/--timeout 'soon' is not a duration/);
    expect(() => givenOptions({ to: ['a'], pool: 'p' }, all)).toThrow(/--to or --pool, not both/);
    expect(() => givenOptions({ retryDelay: '10s', retryMaxDelay: '1s' }, all)).toThrow(/--retry-max-delay/);
    expect(() => givenOptions({ bandwidth: 'fast' }, all)).toThrow(/--bandwidth 'fast'/);
  });
});
