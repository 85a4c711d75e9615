import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type NodeView, assignWaves, chooseDestination, hardwareMismatch, needsOf, planDrain, planReturn, planText } from './plan.js';

const MiB = 1024 * 1024;

function node(name: string, o: Partial<NodeView> = {}): NodeView {
  return { name, reachable: true, guest: 'none', guestRamBytes: 0, capacity: 64 * MiB, agentDevices: [], fileDevices: [], cordoned: false, ...o };
}
const guestOn = (name: string, o: Partial<NodeView> = {}) => node(name, { guest: 'running', guestRamBytes: 32 * MiB, ...o });

describe('destination choice', () => {
  it('needs the same device kinds (agents and nodes file) and enough RAM', () => {
    const g = needsOf(guestOn('a', { agentDevices: ['pit', 'pic'], fileDevices: ['pit', 'pic'] }));
    expect(hardwareMismatch(g, node('b', { agentDevices: ['pic', 'pit'], fileDevices: ['pic', 'pit'] }))).toBeNull();
    expect(hardwareMismatch(g, node('b', { agentDevices: ['pit'], fileDevices: ['pit', 'pic'] }))).toMatch(/has \[pit\], the guest uses \[pic,pit\]/);
    expect(hardwareMismatch(g, node('b', { agentDevices: ['pit', 'pic', 'rtl8169'], fileDevices: ['pit', 'pic'] }))).toMatch(/rtl8169/);
    expect(hardwareMismatch(g, node('b', { agentDevices: ['pit', 'pic'], fileDevices: ['pit'] }))).toMatch(/nodes file gives it \[pit\]/);
    expect(hardwareMismatch(g, node('b', { agentDevices: ['pit', 'pic'], fileDevices: ['pit', 'pic'], capacity: 16 * MiB }))).toMatch(/16.0 MiB RAM, the guest needs 32.0 MiB/);
  });

  it('picks the smallest node that fits, by name among equals, skipping cordoned, busy, reserved, excluded and unreachable nodes', () => {
    const nodes = [guestOn('n1'), node('n2', { cordoned: true }), guestOn('n3'), node('n4', { reachable: false, agentDevices: null, unreachableReason: 'down' }), node('n10', { capacity: 32 * MiB }), node('n9', { capacity: 32 * MiB }), node('n5', { capacity: 128 * MiB }), node('n6', { capacity: 16 * MiB }), node('n7')];
    const g = needsOf(nodes[0]!);
    expect(chooseDestination(g, nodes, { reserved: new Set(), excluded: new Set() })).toEqual({ destination: 'n9' });
    expect(chooseDestination(g, nodes, { reserved: new Set(['n9']), excluded: new Set(['n10']) })).toEqual({ destination: 'n7' });
    const none = chooseDestination(g, nodes, { reserved: new Set(['n9', 'n7']), excluded: new Set(['n10', 'n5']) });
    expect(none.destination).toBeNull();
    const reason = (none as { reason: string }).reason;
    for (const bit of ['n2 cordoned', 'n3 busy (guest running)', 'n4 unreachable (down)', 'n5 failed as a destination', 'n6 16.0 MiB RAM', 'n7 chosen for another guest', 'n9 chosen for another guest']) expect(reason).toContain(bit);
  });

  it('honours --to and --pool, and says so when they leave nothing', () => {
    const nodes = [guestOn('a', { pool: 'r1' }), node('b', { pool: 'r1' }), node('c', { pool: 'r2' }), node('d', { pool: 'r2', capacity: 8 * MiB })];
    const g = needsOf(nodes[0]!);
    const ctx = { reserved: new Set<string>(), excluded: new Set<string>() };
    expect(chooseDestination(g, nodes, { ...ctx, to: ['c'] })).toEqual({ destination: 'c' });
    expect(chooseDestination(g, nodes, { ...ctx, pool: 'r2' })).toEqual({ destination: 'c' });
    const r = chooseDestination(g, nodes, { ...ctx, pool: 'r2', reserved: new Set(['c']) }) as { reason: string };
    expect(r.reason).toMatch(/c chosen for another guest; d 8.0 MiB RAM/);
    expect(r.reason).not.toMatch(/\bb\b/);
    expect((chooseDestination(g, nodes, { ...ctx, pool: 'r9' }) as { reason: string }).reason).toMatch(/pool r9 has no other node/);
  });
});

describe('waves', () => {
  it('at most `parallel` per wave and `perLink` per link per wave', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 5 })), { maxLength: 30 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), (pairs, parallel, perLink) => {
        const items = pairs.map(([s, d], i) => ({ guest: `g${i}`, source: `s${s}`, destination: `d${d}`, ramBytes: 0, devices: [] }));
        const out = assignWaves(items, { parallel, perLink });
        expect(out.map((i) => i.order)).toEqual(out.map((_, k) => k + 1));
        const waves = new Map<number, typeof out>();
        for (const it of out) waves.set(it.wave!, [...(waves.get(it.wave!) ?? []), it]);
        for (const w of waves.values()) {
          expect(w.length).toBeLessThanOrEqual(parallel);
          const links = new Map<string, number>();
          for (const it of w) for (const l of [it.source, it.destination!]) links.set(l, (links.get(l) ?? 0) + 1);
          for (const c of links.values()) expect(c).toBeLessThanOrEqual(perLink);
        }
        // Sorted by wave; the start order keeps the given order within a wave.
        for (let k = 1; k < out.length; k++) expect(out[k]!.wave!).toBeGreaterThanOrEqual(out[k - 1]!.wave!);
      }),
    );
  });
});

describe('planDrain', () => {
  it('places every guest on a distinct compatible idle node, biggest guests first, in the operator order', () => {
    const nodes = [guestOn('n1'), guestOn('n2', { guestRamBytes: 64 * MiB, capacity: 64 * MiB }), guestOn('n3'), node('n4', { capacity: 32 * MiB }), node('n5', { capacity: 64 * MiB }), node('n6', { capacity: 32 * MiB }), node('n7', { guest: 'released' })];
    const p = planDrain({ nodes, drain: ['n1', 'n2', 'n3', 'n7'], parallel: 2, perLink: 2 });
    expect(p.items.map((i) => [i.order, i.guest, i.destination, i.wave])).toEqual([
      [1, 'guest@n1', 'n4', 1],
      [2, 'guest@n2', 'n5', 1],
      [3, 'guest@n3', 'n6', 2],
    ]);
    expect(p.empty).toEqual(['n7']);
  });

  it('says why a guest cannot move, and does not move paused guests or guess about unreachable nodes', () => {
    const nodes = [guestOn('a'), node('b', { guest: 'paused', guestRamBytes: 32 * MiB }), node('c', { reachable: false, agentDevices: null, unreachableReason: 'refused' }), node('d', { capacity: 16 * MiB })];
    const p = planDrain({ nodes, drain: ['a', 'b', 'c'], parallel: 2, perLink: 1 });
    expect(p.items.every((i) => i.destination === null && i.wave === null)).toBe(true);
    expect(p.items[0]!.reason).toMatch(/no destination for guest@a .*d 16.0 MiB RAM, the guest needs 32.0 MiB/);
    expect(p.items[1]!.reason).toMatch(/paused, not running/);
    expect(p.items[2]!.reason).toMatch(/unreachable \(refused\)/);
    expect(planText('drain', p)).toMatch(/cannot move:/);
  });

  it('is a function of its input (the dry run and the real run agree)', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ guest: fc.boolean(), cap: fc.constantFrom(16, 32, 64), cordoned: fc.boolean(), dev: fc.constantFrom('', 'pit') }), { minLength: 2, maxLength: 12 }), fc.integer({ min: 1, max: 3 }), (spec, parallel) => {
        const nodes = spec.map((s, i) => (s.guest ? guestOn(`n${i}`, { capacity: s.cap * MiB, fileDevices: s.dev ? [s.dev] : [] }) : node(`n${i}`, { capacity: s.cap * MiB, cordoned: s.cordoned, fileDevices: s.dev ? [s.dev] : [] })));
        const drain = nodes.filter((n) => n.guest === 'running').map((n) => n.name);
        const a = planDrain({ nodes, drain, parallel, perLink: 1 });
        const b = planDrain({ nodes: structuredClone(nodes), drain: [...drain], parallel, perLink: 1 });
        expect(b).toEqual(a);
        const dests = a.items.filter((i) => i.destination).map((i) => i.destination!);
        expect(new Set(dests).size).toBe(dests.length);
        for (const it of a.items) {
          if (!it.destination) continue;
          const d = nodes.find((n) => n.name === it.destination)!;
          expect(d.cordoned || d.guest === 'running').toBe(false);
          expect(hardwareMismatch(needsOf(nodes.find((n) => n.name === it.source)!), d)).toBeNull();
        }
      }),
    );
  });
});

describe('planReturn', () => {
  it('sends each guest home, or says why not', () => {
    const nodes = [node('home1'), guestOn('home2'), guestOn('x'), guestOn('y'), node('z')];
    const p = planReturn({ nodes, guests: [{ guest: 'guest@home1', location: 'x', home: 'home1' }, { guest: 'guest@home2', location: 'y', home: 'home2' }, { guest: 'guest@home3', location: 'z', home: 'home1' }], parallel: 2, perLink: 1 });
    expect(p.items[0]).toMatchObject({ guest: 'guest@home1', source: 'x', destination: 'home1', wave: 1 });
    expect(p.items[1]).toMatchObject({ guest: 'guest@home2', destination: null });
    expect(p.items[1]!.reason).toMatch(/home2 cannot take guest@home2 back: busy/);
    expect(p.items[2]!.reason).toMatch(/z is idle/);
  });
});
