/**
 * The `shadow` reply is byte for byte the same from both agents: a simulated
 * node with an 8259 pair and an 8254 (TypeScript agent, src/sim/devices.ts)
 * and a native hosted agent trapping the same ports (--trap-chips pic,pit;
 * core/shadow.c). Both start from the chips' reset state and reset it when a
 * guest arrives. (The shadow after arbitrary guest access streams is checked
 * byte for byte against the TypeScript reducers by hypervisor/test/
 * test_vectors.c, through the hosted machine's port traps.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestCluster, startTestCluster } from '../helpers.js';
import { AgentClient } from '../../src/protocol/client.js';
import { MiB, type NativeNet, RawSession, buildNative, nativeNet, nativeUnavailable } from './targets.js';

const why = nativeUnavailable();
if (why) console.log(`native shadow comparison skipped: ${why}`);

describe.skipIf(why !== null)('shadow reply: both agents answer the same bytes', () => {
  let ts: TestCluster;
  let net: NativeNet;
  const sessions: RawSession[] = [];
  beforeAll(async () => {
    buildNative();
    [ts, net] = await Promise.all([startTestCluster([{ name: 'node1', devices: ['pic', 'pit'] }]), nativeNet(1)]);
    await net.startAgent('node1', { trapChips: 'pic,pit' });
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
});
