/**
 * The `shadow` reply is byte for byte the same from both agents: two
 * simulated nodes with an 8259 pair and an 8254 (src/sim/devices.ts), one
 * served by the TypeScript agent, the other by the native agent (the C core
 * as an addon, its shadows fed by port traps on the same bus, core/shadow.c).
 * Both start from the chips' reset state and reset it when a guest arrives;
 * the same IoProgram on freshly reset chips (the agent's own accesses, past
 * the traps) reads the same values from both; then both boot a guest whose timer module programs the chips and takes
 * 1000 Hz interrupts, and after pausing both report the same shadow. (The
 * shadow after arbitrary access streams is checked byte for byte against the
 * TypeScript reducers by hypervisor/test/test_vectors.c.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestCluster, startTestCluster } from '../helpers.js';
import { AgentClient } from '../../src/protocol/client.js';
import { MiB, type NativeNet, RawSession, buildNative, nativeNet, nativeUnavailable } from './targets.js';

const why = nativeUnavailable();
if (why) console.log(`native shadow comparison skipped: ${why}`);

describe.skipIf(why !== null)('8254/8259 through both agents: same shadow bytes, same device program reads', () => {
  let ts: TestCluster;
  let net: NativeNet;
  const sessions: RawSession[] = [];
  beforeAll(async () => {
    buildNative();
    [ts, net] = await Promise.all([startTestCluster([{ name: 'node1', devices: ['pic', 'pit'] }]), nativeNet(1)]);
    await net.startAgent('node1', { devices: ['pic', 'pit'] });
  }, 60_000);
  afterAll(async () => {
    for (const s of sessions) s.close();
    await Promise.all([ts?.stop(), net?.stop()]);
  });

  const open = async (url: string, key: Buffer) => {
    const s = new RawSession(await AgentClient.openTransport(url, { node: 'node1', key }));
    sessions.push(s);
    await s.login('node1', key);
    return s;
  };

  it('at reset and after an incoming guest is prepared', async () => {
    const a = await open(ts.nodes.get('node1')!.url, ts.key);
    const b = await open(net.url('node1'), net.key);
    const both = async (msg: Record<string, unknown>) => {
      const [ra, rb] = [await a.ask(msg), await b.ask(msg)];
      return { ra, rb, ba: Buffer.from(a.lastRaw), bb: Buffer.from(b.lastRaw) };
    };
    let r = await both({ t: 'shadow', id: 300 });
    expect(Object.keys(r.ra!.shadow as object)).toEqual(['pic', 'pit']);
    expect(r.bb.toString('hex')).toBe(r.ba.toString('hex'));
    await a.ask({ t: 'prepareIncoming', id: 301, ramBytes: 8 * MiB, devices: [] });
    await b.ask({ t: 'prepareIncoming', id: 301, ramBytes: 8 * MiB, devices: [] });
    r = await both({ t: 'shadow', id: 70000 });
    expect(r.ra!.t).toBe('ok');
    expect(r.bb.toString('hex')).toBe(r.ba.toString('hex'));
  });

  it('device programs on the real 8254 and 8259 models read the same on both agents', async () => {
    const a = await open(ts.nodes.get('node1')!.url, ts.key);
    const b = await open(net.url('node1'), net.key);
    const out = (port: number, value: number) => ({ op: 'out', port, size: 1, value });
    const inb = (port: number) => ({ op: 'in', port, size: 1 });
    // freshly reset chips (prepareIncoming), then the agent's own accesses: program and read back
    const program = [
      // 8259 pair: ICW1..4 on both chips, a mask, then IMR / IRR / ISR reads
      out(0x20, 0x11), out(0x21, 0x20), out(0x21, 0x04), out(0x21, 0x01),
      out(0xa0, 0x11), out(0xa1, 0x28), out(0xa1, 0x02), out(0xa1, 0x01),
      out(0x21, 0xfa), out(0xa1, 0xff), inb(0x21), inb(0xa1),
      out(0x20, 0x0a), inb(0x20), out(0x20, 0x0b), inb(0x20), inb(0x4d0), inb(0x4d1),
      // 8254: channel 0 mode 2, lobyte/hibyte 1193; read-back status of all three channels
      out(0x43, 0x34), out(0x40, 0xa9), out(0x40, 0x04),
      out(0x43, 0xb6), out(0x42, 0x00), out(0x42, 0x10),
      out(0x43, 0xee), inb(0x40), inb(0x41), inb(0x42), inb(0x61),
      { op: 'waitUntil', space: 'io', addr: 0x21, size: 1, mask: 0xff, expect: 0xfa, timeoutUs: 1000 },
      { op: 'delay', us: 12.5 },
    ];
    const results: unknown[] = [];
    for (const s of [a, b]) {
      expect((await s.ask({ t: 'release', id: 500 }))!.t).toBe('ok');
      expect((await s.ask({ t: 'prepareIncoming', id: 501, ramBytes: 8 * MiB, devices: ['pic', 'pit'] }))!.t).toBe('ok');
      const r = await s.ask({ t: 'runProgram', id: 502, program });
      expect(r!.t, String(r!.message)).toBe('ok');
      results.push(r!.reads);
    }
    expect(results[1]).toEqual(results[0]);
    expect((results[0] as number[]).slice(0, 2)).toEqual([0xfa, 0xff]);
    // the agent's own accesses do not pass the guest's traps: both shadows still at reset, same bytes
    const ra = await a.ask({ t: 'shadow', id: 503 });
    const ba = Buffer.from(a.lastRaw);
    await b.ask({ t: 'shadow', id: 503 });
    expect(Buffer.from(b.lastRaw).toString('hex')).toBe(ba.toString('hex'));
    expect(ra!.t).toBe('ok');
  });

  it('after a guest programmed the chips and took 1000 Hz interrupts on the real device models', async () => {
    const a = await open(ts.nodes.get('node1')!.url, ts.key);
    const b = await open(net.url('node1'), net.key);
    const spec = { modules: [{ name: 'timer', config: { hz: 1000 } }] };
    for (const s of [a, b]) {
      expect((await s.ask({ t: 'release', id: 400 }))!.t).toBe('ok');
      const booted = await s.ask({ t: 'boot', id: 401, ramBytes: 8 * MiB, spec });
      expect(booted!.t, String(booted!.message)).toBe('ok');
    }
    await new Promise((r) => setTimeout(r, 300));
    for (const s of [a, b]) expect((await s.ask({ t: 'pause', id: 402 }))!.t).toBe('ok');
    const ra = await a.ask({ t: 'shadow', id: 403 });
    const ba = Buffer.from(a.lastRaw);
    const rb = await b.ask({ t: 'shadow', id: 403 });
    const bb = Buffer.from(b.lastRaw);
    // the guest's programming is there (8254 channel 0 reload for 1000 Hz: 1193)
    expect(JSON.stringify(rb!.shadow, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))).toContain('1193');
    expect(bb.toString('hex')).toBe(ba.toString('hex'));
    expect(ra!.shadow).toEqual(rb!.shadow);
  });
});
