/**
 * One set of agent protocol scenarios, run against both agents: the
 * simulator's TypeScript agent over WebSocket and the native C agent
 * (hypervisor/, hosted build) over raw Ethernet frames in network
 * namespaces. Every scenario records its outcome (ok, or the error code),
 * and the last test checks both agents gave identical outcomes.
 */
import { encode } from '../../src/protocol/codec.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaremigError } from '../../src/errors.js';
import type { AgentClient } from '../../src/protocol/client.js';
import { GuestMemory } from '../../src/sim/guestMemory.js';
import { workloadSpec } from '../helpers.js';
import { MiB, RawSession, type Target, nativeTarget, nativeUnavailable, tsTarget, xxh64Tree } from './targets.js';
import { lcgBytes } from './vectors.js';

const outcomes = new Map<string, Map<string, string>>();
/** Per agent: the digest reply for the same RAM content (memWrites on an incoming guest). */
const digests = new Map<string, { hex: string; rehashedPages: number; independent: string }>();
const nativeWhy = nativeUnavailable();
if (nativeWhy) console.log(`conformance: native agent skipped: ${nativeWhy}`);

async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return e instanceof BaremigError ? e.code : `threw ${(e as Error).message}`;
  }
}

function replyOutcome(r: Record<string, unknown> | null): string {
  if (!r) return 'no reply';
  return r.t === 'ok' ? 'ok' : String(r.code);
}

const variants: Array<{ name: string; make: () => Promise<Target>; skip: string | null }> = [
  { name: 'ts', make: tsTarget, skip: null },
  { name: 'native', make: nativeTarget, skip: nativeWhy },
];

for (const v of variants) {
  describe.skipIf(v.skip !== null)(`agent protocol conformance: ${v.name}`, () => {
    let T: Target;
    const rec = new Map<string, string>();
    outcomes.set(v.name, rec);
    const note = (scenario: string, o: string, expected: string) => {
      rec.set(scenario, o);
      expect(o, scenario).toBe(expected);
    };
    let c1: AgentClient;
    let c2: AgentClient;

    beforeAll(async () => {
      T = await v.make();
      c1 = await T.connect('node1');
      c2 = await T.connect('node2');
    }, 60_000);
    afterAll(async () => {
      c1?.close();
      c2?.close();
      await T?.stop();
    });

    const reset = async (c: AgentClient) => {
      const s = await c.request('state', {});
      if (s.guest === 'running') await c.request('pause', {});
      await c.request('release', {});
      await c.request('dirtyLogStop', {});
    };

    it('hello and auth: both sides prove the key', async () => {
      const s = await c1.request('state', {});
      expect(s.node).toBe('node1');
      note('state after auth', 'ok', 'ok');
      expect(s.guest).toMatch(/none|released/);
      expect(s.ramCapacity).toBe(64 * MiB);
      expect(s.devices).toEqual([]);
      const raw = await RawSession.open(T, 'node1');
      const h = await raw.ask({ t: 'hello', id: 11, v: 1, role: 'conformance' });
      note('hello', replyOutcome(h), 'ok');
      expect(h!.id).toBe(11);
      expect(h!.node).toBe('node1');
      expect(h!.v).toBe(1);
      expect((h!.challenge as Uint8Array).length).toBe(32);
      raw.close();
    });

    it('a wrong cluster key is refused', async () => {
      note('wrong key', await outcome(T.connect('node1', Buffer.alloc(32, 9), 1500)), 'AUTH');
      // and the agent still serves the right key
      const c = await T.connect('node1');
      note('right key after a wrong one', await outcome(c.request('state', {})), 'ok');
      c.close();
    });

    it('authentication errors: order, version, a bad MAC', async () => {
      let raw = await RawSession.open(T, 'node1');
      note('request before hello', replyOutcome(await raw.ask({ t: 'state', id: 3 })), 'AUTH');
      await new Promise((r) => setTimeout(r, 300));
      note('connection closed after an unauthenticated request', String(raw.closed), 'true');
      raw.close();
      raw = await RawSession.open(T, 'node1');
      note('auth before hello', replyOutcome(await raw.ask({ t: 'auth', id: 3, nonce: Buffer.alloc(32), mac: Buffer.alloc(32) })), 'AUTH');
      raw.close();
      raw = await RawSession.open(T, 'node1');
      note('wrong version', replyOutcome(await raw.ask({ t: 'hello', id: 4, v: 2 })), 'VERSION');
      const h = await raw.ask({ t: 'hello', id: 5, v: 1 });
      note('hello after a wrong version', replyOutcome(h), 'ok');
      note('request after hello, before auth', replyOutcome(await raw.ask({ t: 'state', id: 6 })), 'AUTH');
      note('auth with a bad MAC', replyOutcome(await raw.ask({ t: 'auth', id: 7, nonce: Buffer.alloc(32, 1), mac: Buffer.alloc(32, 2) })), 'AUTH');
      await new Promise((r) => setTimeout(r, 300));
      note('connection closed after a bad MAC', String(raw.closed), 'true');
      raw.close();
    });

    it('malformed input gets a clear error and changes nothing', async () => {
      const raw = await RawSession.open(T, 'node1');
      await raw.login('node1', T.key);
      const cases: Array<[string, Uint8Array | Record<string, unknown>, string, number]> = [
        ['not msgpack', Buffer.from([0xc1]), 'PROTOCOL', 0],
        ['trailing bytes', Buffer.concat([encode({ t: 'state', id: 21 }), Buffer.from([0])]), 'PROTOCOL', 0],
        ['truncated', encode({ t: 'state', id: 22 }).subarray(0, 5), 'PROTOCOL', 0],
        ['not a map', encode([1, 2, 3]), 'PROTOCOL', 0],
        ['no t', { id: 23 }, 'PROTOCOL', 0],
        ['t not a string', { t: 5, id: 24 }, 'PROTOCOL', 0],
        ['unknown type', { t: 'format', id: 25 }, 'PROTOCOL', 25],
        ['unknown key', { t: 'state', id: 26, extra: 1 }, 'PROTOCOL', 26],
        ['bad field type', { t: 'memRead', id: 27, addr: '0', len: 4 }, 'PROTOCOL', 27],
        ['fractional number', { t: 'memRead', id: 28, addr: 1.5, len: 4 }, 'PROTOCOL', 28],
        ['address above 4 GiB', { t: 'memRead', id: 29, addr: 2 ** 32 + 4096, len: 4 }, 'PROTOCOL', 29],
        ['length above 1 MiB', { t: 'memRead', id: 30, addr: 0, len: MiB + 1 }, 'PROTOCOL', 30],
        ['negative length', { t: 'memRead', id: 31, addr: 0, len: -1 }, 'PROTOCOL', 31],
        ['nil for an optional field', { t: 'hello', id: 32, v: 1, role: null }, 'PROTOCOL', 32],
        ['id as a bigint', { t: 'state', id: 33n }, 'PROTOCOL', 0],
        ['nonce of 31 bytes', { t: 'auth', id: 34, nonce: Buffer.alloc(31), mac: Buffer.alloc(32) }, 'PROTOCOL', 34],
        ['huge declared bin length', Buffer.concat([Buffer.from([0x83, 0xa1, 0x74, 0xa8]), Buffer.from('memWrite'), Buffer.from([0xa2, 0x69, 0x64, 0x23, 0xa4]), Buffer.from('data'), Buffer.from([0xc6, 0xff, 0xff, 0xff, 0xf0, 1, 2, 3])]), 'PROTOCOL', 0],
        ['huge declared array count', Buffer.concat([Buffer.from([0x83, 0xa1, 0x74, 0xaa]), Buffer.from('runProgram'), Buffer.from([0xa2, 0x69, 0x64, 0x24, 0xa7]), Buffer.from('program'), Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])]), 'PROTOCOL', 0],
        ['deep nesting', Buffer.concat([Buffer.from([0x83, 0xa1, 0x74, 0xa5]), Buffer.from('state'), Buffer.from([0xa2, 0x69, 0x64, 0x25, 0xa1, 0x78]), Buffer.alloc(100, 0x91), Buffer.from([0])]), 'PROTOCOL', 37],
        ['program op of size 3', { t: 'runProgram', id: 38, program: [{ op: 'in', port: 0x40, size: 3 }] }, 'PROTOCOL', 38],
        ['unknown program op', { t: 'runProgram', id: 39, program: [{ op: 'hlt' }] }, 'PROTOCOL', 39],
        ['program op with an extra key', { t: 'runProgram', id: 40, program: [{ op: 'delay', us: 1, port: 3 }] }, 'PROTOCOL', 40],
        ['delay above 5 s', { t: 'runProgram', id: 41, program: [{ op: 'delay', us: 5_000_001 }] }, 'PROTOCOL', 41],
        ['streamPages peer without token', { t: 'streamPages', id: 42, which: 'all', peer: { host: 'x', port: 1 } }, 'PROTOCOL', 42],
        ['bandwidth zero', { t: 'streamPages', id: 43, which: 'all', peer: { host: 'x', port: 1, token: Buffer.alloc(32) }, bandwidth: 0 }, 'PROTOCOL', 43],
        ['boot spec with 17 modules', { t: 'boot', id: 44, ramBytes: 8 * MiB, spec: { modules: Array.from({ length: 17 }, () => ({ name: 'heartbeat', config: {} })) } }, 'PROTOCOL', 44],
        ['vcpuSet wallMs negative', { t: 'vcpuSet', id: 45, vcpu: {}, wallMs: -1 }, 'PROTOCOL', 45],
      ];
      for (const [name, msg, code, id] of cases) {
        if (msg instanceof Uint8Array) raw.sendRaw(msg);
        else raw.send(msg);
        const r = await raw.next();
        note(`malformed: ${name}`, replyOutcome(r), code);
        expect(r!.id, name).toBe(id);
        expect(typeof r!.message).toBe('string');
      }
      // nothing changed, the session still works
      note('session alive after malformed input', replyOutcome(await raw.ask({ t: 'state', id: 50 })), 'ok');
      raw.close();
    });

    it('state rules of every command on an idle node', async () => {
      await reset(c1);
      const peer = { host: T.dataHost('node2'), port: 1, token: Buffer.alloc(32) };
      const checks: Array<[string, Promise<unknown>, string]> = [
        ['dirtyLogStart idle', c1.request('dirtyLogStart', {}), 'STATE'],
        ['dirtyLogSync idle', c1.request('dirtyLogSync', {}), 'STATE'],
        ['streamPages idle', c1.request('streamPages', { which: 'all', peer }), 'STATE'],
        ['memRead idle', c1.request('memRead', { addr: 0, len: 8 }), 'STATE'],
        ['memWrite idle', c1.request('memWrite', { addr: 0, data: Buffer.alloc(8) }), 'STATE'],
        ['pause idle', c1.request('pause', {}), 'STATE'],
        ['resume idle', c1.request('resume', {}), 'STATE'],
        ['vcpuGet idle', c1.request('vcpuGet', {}), 'STATE'],
        ['vcpuSet idle', c1.request('vcpuSet', { vcpu: {}, wallMs: 0 }), 'STATE'],
        ['runProgram idle', c1.request('runProgram', { program: [] }), 'STATE'],
        ['digest idle', c1.request('digest', {}), 'STATE'],
        ['shadow idle', c1.request('shadow', {}), 'ok'],
        ['dirtyLogStop idle', c1.request('dirtyLogStop', {}), 'ok'],
        ['release idle', c1.request('release', {}), 'ok'],
      ];
      for (const [name, p, code] of checks) note(name, await outcome(p), code);
      expect((await c1.request('shadow', {})).shadow).toEqual({});
    });

    it('incoming guest: memory, digest, programs, vCPU checks', async () => {
      await reset(c2);
      note('prepareIncoming above capacity', await outcome(c2.request('prepareIncoming', { ramBytes: 128 * MiB, devices: [] })), 'BAD_REQUEST');
      note('prepareIncoming not MiB-aligned', await outcome(c2.request('prepareIncoming', { ramBytes: 16 * MiB + 4096, devices: [] })), 'BAD_REQUEST');
      note('prepareIncoming missing device', await outcome(c2.request('prepareIncoming', { ramBytes: 16 * MiB, devices: ['rtl8169'] })), 'BAD_REQUEST');
      const prep = await c2.request('prepareIncoming', { ramBytes: 16 * MiB, devices: [] });
      note('prepareIncoming', 'ok', 'ok');
      expect(prep.token.length).toBe(32);
      note('prepareIncoming twice', await outcome(c2.request('prepareIncoming', { ramBytes: 16 * MiB, devices: [] })), 'STATE');
      // the same writes on a local copy give the digest the agent must report
      const ref = new GuestMemory(16 * MiB);
      const writes: Array<[number, Buffer]> = [
        [0, Buffer.alloc(4096, 0x11)],
        [5 * MiB + 123, Buffer.from('baremig digest tree')],
        [16 * MiB - 100, Buffer.alloc(100, 0xee)],
        [3 * MiB, Buffer.from(Array.from({ length: 65536 }, (_, i) => (i * 31) & 0xff))],
        [8 * MiB, lcgBytes(7, MiB)],
        [8 * MiB + 12288, Buffer.alloc(8192)], // zeros over written data
        [12 * MiB, Buffer.alloc(4096)], // zeros onto zeros
      ];
      for (const [a, d] of writes) {
        await c2.request('memWrite', { addr: a, data: d });
        ref.writeBytes(a, d);
      }
      note('memWrite past the end', await outcome(c2.request('memWrite', { addr: 16 * MiB - 2, data: Buffer.alloc(4) })), 'BAD_REQUEST');
      note('memRead past the end', await outcome(c2.request('memRead', { addr: 16 * MiB, len: 1 })), 'BAD_REQUEST');
      note('memRead at the end, empty', await outcome(c2.request('memRead', { addr: 16 * MiB, len: 0 })), 'ok');
      const back = await c2.request('memRead', { addr: 3 * MiB, len: 65536 });
      expect(Buffer.from(back.data).equals(writes[3]![1])).toBe(true);
      const d = await c2.request('digest', {});
      expect(d.hex).toBe(await T.referenceDigest(ref));
      const independent = await xxh64Tree(ref.bytes);
      expect(d.hex).toBe(independent);
      digests.set(v.name, { hex: d.hex, rehashedPages: d.rehashedPages, independent });
      note('digest equals the reference tree', 'ok', 'ok');
      note('a second digest rehashes nothing', String((await c2.request('digest', {})).rehashedPages), '0');
      const prog = await c2.request('runProgram', {
        program: [
          { op: 'in', port: 0x60, size: 1 },
          { op: 'in', port: 0x60, size: 2 },
          { op: 'mmioRead', addr: 0xfebf0000, size: 4 },
          { op: 'out', port: 0x80, size: 1, value: 0x55 },
          { op: 'memWrite', addr: 0x2000, data: Buffer.from([1, 2, 3]) },
          { op: 'memRead', addr: 0x2000, len: 3 },
          { op: 'delay', us: 10 },
        ],
      });
      note('runProgram', 'ok', 'ok');
      expect(prog.reads.map((x) => (x instanceof Uint8Array ? [...x] : x))).toEqual([0xff, 0xffff, 0xffffffff, [1, 2, 3]]);
      expect(typeof prog.elapsedUs).toBe('number');
      note('runProgram memWrite out of range', await outcome(c2.request('runProgram', { program: [{ op: 'memWrite', addr: 16 * MiB, data: Buffer.alloc(1) }] })), 'BAD_REQUEST');
      note('runProgram unknown NIC', await outcome(c2.request('runProgram', { program: [{ op: 'injectFrame', device: 'eth9', frame: Buffer.alloc(60) }] })), 'BAD_REQUEST');
      note('runProgram waitUntil times out', await outcome(c2.request('runProgram', { program: [{ op: 'waitUntil', space: 'io', addr: 0x64, size: 1, mask: 0xff, expect: 0, timeoutUs: 2000 }] })), 'DEVICE');
      note('vcpuSet malformed state', await outcome(c2.request('vcpuSet', { vcpu: { gpr: {} }, wallMs: 0 })), 'PROTOCOL');
      note('resume without a bootable guest', await outcome(c2.request('resume', {})), 'STATE');
      note('release incoming', await outcome(c2.request('release', {})), 'ok');
      expect((await c2.request('state', {})).guest).toBe('released');
    });

    it('a running guest: boot, vCPU, pause, dirty log, release rules', async () => {
      await reset(c1);
      note('boot unknown module', await outcome(c1.request('boot', { ramBytes: 16 * MiB, spec: { modules: [{ name: 'bogus', config: {} }] } })), 'BAD_REQUEST');
      note('boot above capacity', await outcome(c1.request('boot', { ramBytes: 128 * MiB, spec: workloadSpec() })), 'BAD_REQUEST');
      note('boot', await outcome(c1.request('boot', { ramBytes: 16 * MiB, spec: workloadSpec({ workingSetBytes: 2 * MiB, dirtyRate: 2e6 }) })), 'ok');
      note('boot twice', await outcome(c1.request('boot', { ramBytes: 16 * MiB, spec: workloadSpec() })), 'STATE');
      note('memWrite while running', await outcome(c1.request('memWrite', { addr: 0, data: Buffer.alloc(1) })), 'STATE');
      note('release while running', await outcome(c1.request('release', {})), 'STATE');
      const v = await c1.request('vcpuGet', {});
      note('vcpuGet', 'ok', 'ok');
      expect(typeof v.vcpu.rip).toBe('bigint');
      expect(typeof v.vcpu.gpr.rax).toBe('bigint');
      expect(v.vcpu.xsave.length).toBe(832);
      note('dirtyLogSync before start', await outcome(c1.request('dirtyLogSync', {})), 'STATE');
      note('dirtyLogStart', await outcome(c1.request('dirtyLogStart', {})), 'ok');
      await new Promise((r) => setTimeout(r, 50));
      const s = await c1.request('dirtyLogSync', {});
      note('dirtyLogSync', 'ok', 'ok');
      expect(s.dirtyPages).toBeGreaterThan(0);
      expect(typeof s.intervalMs).toBe('number');
      expect((await c1.request('state', {})).dirtyLog).toBe(true);
      const p = await c1.request('pause', {});
      note('pause', 'ok', 'ok');
      expect(p.guestNs).toBeGreaterThan(0);
      note('pause twice', await outcome(c1.request('pause', {})), 'STATE');
      note('memWrite while paused', await outcome(c1.request('memWrite', { addr: 0x3000, data: Buffer.alloc(16, 1) })), 'ok');
      note('vcpuSet on a paused source', await outcome(c1.request('vcpuSet', { vcpu: v.vcpu, wallMs: v.wallMs })), 'STATE');
      note('resume', await outcome(c1.request('resume', {})), 'ok');
      await c1.request('pause', {});
      note('release paused', await outcome(c1.request('release', {})), 'ok');
      expect((await c1.request('state', {})).guest).toBe('released');
      expect((await c1.request('state', {})).dirtyLog).toBe(false);
    });

    it('streams pages agent to agent, verifies, and the destination runs the guest', async () => {
      await reset(c1);
      await reset(c2);
      await c1.request('boot', { ramBytes: 16 * MiB, spec: workloadSpec({ workingSetBytes: 4 * MiB, dirtyRate: 4e6, fill: 'halfRandom' }) });
      const prep = await c2.request('prepareIncoming', { ramBytes: 16 * MiB, devices: [] });
      const peer = { host: T.dataHost('node2'), port: prep.port, token: prep.token };
      note('streamPages with a wrong token', await outcome(c1.request('streamPages', { which: 'all', peer: { ...peer, token: Buffer.alloc(32, 7) } })), 'STREAM');
      note('streamPages dirty before the log', await outcome(c1.request('streamPages', { which: 'dirty', peer })), 'STATE');
      await c1.request('dirtyLogStart', {});
      const all = await c1.request('streamPages', { which: 'all', peer });
      note('streamPages all', 'ok', 'ok');
      expect(all.pages).toBe(4096);
      expect(all.zeroPages).toBeGreaterThan(1000);
      // Wire bytes by each agent's page framing (src/protocol/pageStream.ts): the simulator's agent sends
      // BATCH frames of up to 256 pages (8-byte header, a 4-byte entry per page); the native agent's link
      // stream sends a frame per page (8-byte header). Both: the non-zero pages' bytes and END.
      const raw = (all.pages - all.zeroPages) * 4096;
      const framing = T.name.startsWith('native') ? all.pages * 8 : Math.ceil(all.pages / 256) * 8 + all.pages * 4;
      expect(all.wireBytes).toBe(raw + framing + 8);
      await c1.request('dirtyLogSync', {});
      const r2 = await c1.request('streamPages', { which: 'dirty', peer, bandwidth: 50e6 });
      note('streamPages dirty with a bandwidth cap', 'ok', 'ok');
      expect(r2.pages).toBeGreaterThan(0);
      await c1.request('pause', {});
      await c1.request('dirtyLogSync', {});
      await c1.request('streamPages', { which: 'dirty', peer });
      const v = await c1.request('vcpuGet', {});
      await c2.request('vcpuSet', { vcpu: v.vcpu, wallMs: v.wallMs });
      note('vcpuSet', 'ok', 'ok');
      const [ds, dd] = await Promise.all([c1.request('digest', {}), c2.request('digest', {})]);
      expect(dd.hex).toBe(ds.hex);
      note('digests match after the stream', 'ok', 'ok');
      note('resume incoming', await outcome(c2.request('resume', {})), 'ok');
      expect((await c2.request('state', {})).guest).toBe('running');
      note('release source', await outcome(c1.request('release', {})), 'ok');
      await c2.request('pause', {});
      await c2.request('release', {});
    });

    it('a coordinator that goes away drops the incoming guest it prepared', async () => {
      await reset(c2);
      const c = await T.connect('node2');
      await c.request('prepareIncoming', { ramBytes: 8 * MiB, devices: [] });
      c.close();
      const t0 = Date.now();
      let g = '';
      while (Date.now() - t0 < 5000) {
        g = (await c2.request('state', {})).guest;
        if (g !== 'incoming') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      note('incoming dropped when its coordinator leaves', g, 'released');
    });
  });
}

describe.skipIf(nativeWhy !== null)('conformance: both agents', () => {
  it('report the same memory digest for the same RAM content', () => {
    const ts = digests.get('ts')!;
    const nat = digests.get('native')!;
    expect(nat.hex).toBe(ts.hex);
    expect(nat.independent).toBe(ts.independent);
    // fresh RAM starts with known zero-page hashes on both: only written pages are hashed
    expect(nat.rehashedPages).toBe(ts.rehashedPages);
    expect(ts.rehashedPages).toBeLessThan(400);
  });

  it('gave identical outcomes in every scenario', () => {
    const ts = outcomes.get('ts')!;
    const nat = outcomes.get('native')!;
    expect(ts.size).toBeGreaterThan(60);
    expect(Object.fromEntries(nat)).toEqual(Object.fromEntries(ts));
  });
});
