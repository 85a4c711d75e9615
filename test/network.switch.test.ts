import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { L2Switch } from '../src/sim/network/switch.js';

const mac = (n: number) => [0x02, 0, 0, 0, 0, n];
const BCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
function frame(dst: number[], src: number[], len = 60, tag = 0): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  f[14] = tag;
  return f;
}

function rig(agingMs = 300_000) {
  let now = 0;
  const moves: string[] = [];
  const sw = new L2Switch({ agingMs, now: () => now, onMove: (m, from, to) => moves.push(`${m} ${from}->${to}`) });
  const got: Record<string, Uint8Array[]> = {};
  const port = (name: string) => {
    got[name] = [];
    return sw.addPort({ name, deliver: (f) => got[name]!.push(f) });
  };
  return { sw, got, port, moves, advance: (ms: number) => (now += ms) };
}

describe('L2 switch', () => {
  it('floods unknown unicast and broadcast, then forwards to the learned port only', () => {
    const { sw, got, port } = rig();
    const a = port('a');
    const b = port('b');
    port('c');
    sw.receive(a, frame(mac(2), mac(1))); // unknown destination: flooded
    expect([got.a!.length, got.b!.length, got.c!.length]).toEqual([0, 1, 1]);
    sw.receive(b, frame(mac(1), mac(2))); // mac1 learned on a
    expect([got.a!.length, got.b!.length, got.c!.length]).toEqual([1, 1, 1]);
    sw.receive(a, frame(mac(2), mac(1))); // mac2 learned on b
    expect([got.a!.length, got.b!.length, got.c!.length]).toEqual([1, 2, 1]);
    sw.receive(a, frame(BCAST, mac(1)));
    expect([got.a!.length, got.b!.length, got.c!.length]).toEqual([1, 3, 2]);
    expect(sw.lookup(mac(1))).toBe('a');
    expect(sw.stats().floods).toBe(2);
  });

  it('filters a frame whose destination sits on the port it came from', () => {
    const { sw, got, port } = rig();
    const a = port('a');
    port('b');
    sw.receive(a, frame(BCAST, mac(1)));
    sw.receive(a, frame(BCAST, mac(3)));
    const before = got.b!.length;
    sw.receive(a, frame(mac(3), mac(1)));
    expect(got.b!.length).toBe(before);
    expect(sw.stats().ports[0]!.dropped).toBe(1);
  });

  it('moves a MAC to the port it shows up on (a migrated guest announcing itself)', () => {
    const { sw, got, port, moves } = rig();
    const peer = port('peer');
    const n17 = port('node17');
    const n42 = port('node42');
    sw.receive(n17, frame(BCAST, mac(9)));
    sw.receive(peer, frame(mac(9), mac(1)));
    expect(got.node17!.length).toBe(1);
    sw.receive(n42, frame(BCAST, mac(9), 60, 1)); // the gratuitous ARP from the destination
    expect(moves).toEqual(['02:00:00:00:00:09 node17->node42']);
    expect(got.node17!.length).toBe(2); // the announcement is a broadcast
    sw.receive(peer, frame(mac(9), mac(1)));
    expect(got.node17!.length).toBe(2);
    expect(got.node42!.length).toBe(2); // node17's first broadcast, then the peer's frame
    expect(sw.lookup(mac(9))).toBe('node42');
    expect(sw.stats().moves).toBe(1);
  });

  it('ages entries out and floods again', () => {
    const { sw, got, port, advance } = rig(1000);
    const a = port('a');
    const b = port('b');
    port('c');
    sw.receive(b, frame(BCAST, mac(2)));
    sw.receive(a, frame(mac(2), mac(1)));
    expect(got.c!.length).toBe(1); // only the broadcast
    advance(1001);
    expect(sw.lookup(mac(2))).toBeUndefined();
    sw.receive(a, frame(mac(2), mac(1)));
    expect(got.c!.length).toBe(2);
    advance(1001);
    expect(sw.sweep()).toBeGreaterThan(0);
    expect(sw.stats().entries).toBe(0);
  });

  it('drops runts, oversized frames and group source addresses; jumbo frames pass', () => {
    const { sw, got, port } = rig();
    const a = port('a');
    port('b');
    sw.receive(a, new Uint8Array(13));
    sw.receive(a, frame(BCAST, mac(1), 9019));
    sw.receive(a, frame(BCAST, [0x03, 0, 0, 0, 0, 1]));
    expect(got.b!.length).toBe(0);
    sw.receive(a, frame(BCAST, mac(1), 9018));
    expect(got.b!.length).toBe(1);
    expect(sw.stats().ports[0]!.dropped).toBe(3);
  });

  it('unplugging a port forgets its addresses; a full table floods without learning', () => {
    const { sw, got, port } = rig();
    const a = port('a');
    const b = port('b');
    sw.receive(b, frame(BCAST, mac(2)));
    sw.removePort(b);
    expect(sw.lookup(mac(2))).toBeUndefined();
    const c = port('c');
    expect(c).toBe(b); // the slot is reused
    const small = new L2Switch({ maxEntries: 1 });
    const out: Uint8Array[] = [];
    const p0 = small.addPort({ name: 'x', deliver: () => {} });
    small.addPort({ name: 'y', deliver: (f) => out.push(f) });
    small.receive(p0, frame(BCAST, mac(1)));
    small.receive(p0, frame(BCAST, mac(2)));
    expect(small.stats().entries).toBe(1);
    void a;
    void got;
  });

  it('property: a unicast frame reaches its destination port exactly once, never its own port', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ from: fc.integer({ min: 0, max: 3 }), src: fc.integer({ min: 1, max: 6 }), dst: fc.integer({ min: 1, max: 6 }), bcast: fc.boolean() }), { minLength: 1, maxLength: 60 }),
        (events) => {
          const { sw, got, port } = rig();
          const ids = ['p0', 'p1', 'p2', 'p3'].map((n) => port(n));
          const where = new Map<number, number>();
          events.forEach((e, i) => {
            const before = ids.map((_, k) => got[`p${k}`]!.length);
            sw.receive(ids[e.from]!, frame(e.bcast ? BCAST : mac(e.dst), mac(e.src), 60, i));
            where.set(e.src, e.from);
            const delta = ids.map((_, k) => got[`p${k}`]!.length - before[k]!);
            expect(delta[e.from]).toBe(0);
            const known = where.get(e.dst);
            if (!e.bcast && known !== undefined) {
              // Learned (possibly just now, when src == dst): exactly that port, unless it is the ingress.
              expect(delta.reduce((x, y) => x + y, 0)).toBe(known === e.from ? 0 : 1);
              if (known !== e.from) expect(delta[known]).toBe(1);
            } else expect(delta.reduce((x, y) => x + y, 0)).toBe(3);
          });
        },
      ),
    );
  });
});
