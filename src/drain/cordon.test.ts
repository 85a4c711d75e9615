import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isBaremigError } from '../errors.js';
import { assertNotCordoned, cordon, cordonedSet, readCordons, uncordon } from './cordon.js';
import { drainStateDir, tryOwn, withLock } from './stateDir.js';
import { fakeInventory } from './testHarness.js';

describe('cordons', () => {
  it('persist in the drain state directory next to the nodes file, for every process', () => {
    const inv = fakeInventory([{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
    const dir = drainStateDir(inv.file);
    expect(dir).toBe(join(inv.file, '..', 'drain'));
    expect(cordon(dir, ['a', 'b'], 'test')).toEqual(['a', 'b']);
    expect(cordon(dir, ['b', 'c'], 'test')).toEqual(['c']);
    expect(existsSync(join(dir, 'cordons.json'))).toBe(true);
    // Another process sees them.
    const code = `import('${join(process.cwd(), 'src/drain/cordon.ts')}').then((m) => process.stdout.write(JSON.stringify([...m.cordonedSet(${JSON.stringify(dir)})])))`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { encoding: 'utf8' });
    expect(JSON.parse(r.stdout)).toEqual(['a', 'b', 'c']);
    expect(uncordon(dir, ['b', 'x'])).toEqual(['b']);
    expect([...cordonedSet(dir)].sort()).toEqual(['a', 'c']);
    expect(readCordons(dir).a!.by).toBe('test');
  });

  it('baremig cordon / uncordon', () => {
    const inv = fakeInventory([{ name: 'a' }, { name: 'b' }]);
    const main = join(process.cwd(), 'src/cli/main.ts');
    const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', main, '--nodes-file', inv.file, ...args, '--json'], { encoding: 'utf8' });
    const c = run('cordon', 'a', 'b');
    expect(c.status).toBe(0);
    expect(JSON.parse(c.stdout)).toMatchObject({ ok: true, cordoned: ['a', 'b'] });
    const u = run('uncordon', 'a');
    expect(u.status).toBe(0);
    expect(JSON.parse(u.stdout)).toMatchObject({ ok: true, uncordoned: ['a'], notCordoned: [] });
    expect(Object.keys(readCordons(drainStateDir(inv.file)))).toEqual(['b']);
  });

  it('no migration may target a cordoned node', () => {
    const inv = fakeInventory([{ name: 'a' }, { name: 'b' }]);
    cordon(drainStateDir(inv.file), ['b'], 'drain-x');
    expect(() => assertNotCordoned(inv, 'a')).not.toThrow();
    try {
      assertNotCordoned(inv, 'b');
      expect.unreachable();
    } catch (e) {
      expect(isBaremigError(e, 'CORDONED')).toBe(true);
      expect((e as Error).message).toMatch(/b is cordoned .*by drain-x.*baremig uncordon b/);
    }
  });

  it('locks: a live owner keeps its file, a dead one loses it', () => {
    const inv = fakeInventory([{ name: 'a' }]);
    const dir = drainStateDir(inv.file);
    cordon(dir, ['a'], 't');
    const f = join(dir, 'x.owner');
    expect(tryOwn(f, 'me')).toBeNull();
    expect(tryOwn(f, 'me')?.pid).toBe(process.pid); // held (by us)
    const dead = spawnSync(process.execPath, ['-e', `require('fs').writeFileSync(${JSON.stringify(f)}, JSON.stringify({pid: process.pid, since: 'x', what: 'y'}))`]);
    expect(dead.status).toBe(0);
    expect(tryOwn(f, 'me')).toBeNull(); // its writer has exited: taken over
    expect(withLock(join(dir, 'l.lock'), () => 42)).toBe(42);
  });
});
