/**
 * The shared test vectors under hypervisor/test/vectors/ must be what the
 * TypeScript side computes today: the C test (make -C hypervisor test,
 * test_vectors) replays them against the native core, so a change to the
 * simulator's XXH64 digest or to the 8254/8259 shadow rules that is not
 * carried into the vectors (npx tsx test/conformance/vectors.ts --write) and
 * into the C mirror fails here first.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VECTOR_DIR, allVectors } from './vectors.js';

describe('shared vectors for the native agent', () => {
  it('are what the TypeScript digest and shadow reducers produce now', async () => {
    const files = await allVectors();
    expect(Object.keys(files).sort()).toEqual(['agent-shadow.json', 'digest.json', 'pic.json', 'pit.json', 'xxh64.json']);
    for (const [name, text] of Object.entries(files)) {
      const committed = readFileSync(join(VECTOR_DIR, name), 'utf8');
      expect(committed === text, `${name} is stale: run npx tsx test/conformance/vectors.ts --write, then make -C hypervisor test`).toBe(true);
    }
  });
});
