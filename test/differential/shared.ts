/**
 * What the two differential tests (pic.diff.test.ts, pit.diff.test.ts) share:
 * the QEMU guard, the run configuration, and the deviation table's shape.
 *
 * Configuration (environment):
 *  - DIFF_SEED=<int>      fast-check seed (default: a fresh one, printed; under CI a fixed one)
 *  - DIFF_PATH=<path>     fast-check replay path (from a failure report; needs DIFF_SEED)
 *  - DIFF_RUNS=<n>        override the explicit numRuns of both tests
 *  - DIFF_DISABLE=a,b     switch deviation rows off in the random property, to
 *                         see that a row is needed (the test must then fail)
 */
import { describe, expect, it } from 'vitest';
import { findQemu } from '../../src/devices/qemuOracle/index.js';

export const qemuPath = findQemu();
export const inCi = !!process.env['CI'];

/** Same guard as src/devices/qemuOracle/qemuOracle.test.ts: skip only when QEMU is absent, fail under CI. */
export function qemuSkipReason(suite: string): string | null {
  if (qemuPath) return null;
  const why = `${suite} skipped: qemu-system-x86_64 is not installed (\`which qemu-system-x86_64\` found nothing; apt-get install qemu-system-x86)`;
  console.warn(why);
  return why;
}

export interface DiffConfig {
  seed: number;
  path: string | undefined;
  numRuns: number;
  disabled: ReadonlySet<string>;
}

export function diffConfig(defaultRuns: number): DiffConfig {
  const env = process.env;
  const seedText = env['DIFF_SEED'];
  // CI replays a fixed seed, so a red CI is always reproducible and never a
  // new sequence's surprise; local runs explore fresh sequences (seed printed).
  const seed =
    seedText !== undefined && seedText !== '' ? Number.parseInt(seedText, 10) : env['CI'] ? 20261126 : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
  if (!Number.isInteger(seed)) throw new Error(`DIFF_SEED must be an integer, got ${JSON.stringify(seedText)}`);
  const runsText = env['DIFF_RUNS'];
  const numRuns = runsText ? Number.parseInt(runsText, 10) : defaultRuns;
  if (!(numRuns > 0)) throw new Error(`DIFF_RUNS must be a positive integer, got ${JSON.stringify(runsText)}`);
  const disabled = new Set((env['DIFF_DISABLE'] ?? '').split(',').map((s) => s.trim()).filter(Boolean));
  return { seed, path: env['DIFF_PATH'] || undefined, numRuns, disabled };
}

/**
 * One documented difference between a model and QEMU. `handling` says how
 * the comparison deals with it; the id switches it off (DIFF_DISABLE and the
 * "every row is needed" witnesses).
 */
export interface DeviationRow<Id extends string = string> {
  id: Id;
  /** The field, read or behaviour concerned. */
  field: string;
  /** When it shows. */
  condition: string;
  /** Which source says what: the Intel datasheet versus QEMU's code. */
  reason: string;
  /** normalise (an encoding or a value mapped), skip (not compared), drop-op / rewrite-op (the sequence avoids it). */
  handling: string;
}

/**
 * Checks the table's ids and keeps the DIFF_DISABLE ids that are this
 * table's (the variable serves both tests; the others are noted, not fatal).
 */
export function checkTable(chip: string, rows: readonly DeviationRow[], disabled: ReadonlySet<string>): ReadonlySet<string> {
  const ids = new Set<string>(rows.map((r) => r.id));
  if (ids.size !== rows.length) throw new Error('duplicate deviation row id');
  const mine = new Set([...disabled].filter((d) => ids.has(d)));
  const other = [...disabled].filter((d) => !ids.has(d));
  if (other.length) console.log(`${chip}: DIFF_DISABLE ${other.join(',')} is not a row here (rows: ${[...ids].join(', ')})`);
  return mine;
}

export function hex(v: number, width = 2): string {
  return `0x${v.toString(16).padStart(width, '0')}`;
}

/** Counts per reason, for the run summary. */
export class Tally {
  private readonly counts = new Map<string, number>();
  add(key: string, n = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }
  merge(other: Tally, prefix = ''): void {
    for (const [k, v] of other.counts) this.add(prefix + k, v);
  }
  toString(): string {
    return [...this.counts.entries()].map(([k, v]) => `${k}=${v}`).join(' ') || 'none';
  }
}

/**
 * Under CI a missing QEMU is a failure, not a skip: the CI script installs it,
 * so a skip there would hide a broken install step.
 */
export function failInCiWithoutQemu(suite: string, skip: string | null): void {
  if (!skip || !inCi) return;
  describe(`${suite} in CI`, () => {
    it('needs qemu-system-x86_64, which CI installs', () => {
      expect.fail('qemu-system-x86_64 not found under CI: the CI script must apt-get install qemu-system-x86');
    });
  });
}
