/**
 * A live migration of a running guest between two native hosted agents over
 * the namespace migration network: the engine drives both agents over the l2
 * transport, pages flow agent to agent over raw frames, the digest verifies,
 * and the guest's heartbeat goes on on the destination. Then again with 5 %
 * of the frames lost in the network: `up.sh --loss 5` (netem on the bridge
 * ports, or where the kernel has no sch_netem an nftables bridge rule) drops
 * 5 % of the frames crossing the bridge, both directions of every session
 * (control messages through the coordinator's helper and the page stream).
 * The agents themselves lose nothing (their lossDropped stays 0).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { migrate } from '../../src/engine/migration.js';
import { AgentClient } from '../../src/protocol/client.js';
import { HeartbeatObserver, readHeartbeat } from '../../src/sim/guest/observer.js';
import { workloadSpec } from '../helpers.js';
import { networkLoss, networkLossUnavailable } from './netLoss.js';
import { MiB, type NativeNet, buildNative, nativeNet, nativeUnavailable } from './targets.js';

const why = nativeUnavailable();
if (why) console.log(`native migration skipped: ${why}`);
const whyNoLoss = why ?? networkLossUnavailable();
if (!why && whyNoLoss) console.log(`native migration with network loss skipped: ${whyNoLoss}`);

let net: NativeNet | null = null;
const clients: AgentClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await net?.stop();
  net = null;
});

/**
 * lossPct: frames lost in the network (the bridge), percent. agentLoss: the
 * fraction of received frames every agent and the coordinator's helper drop
 * themselves (fault injection that needs nothing of the kernel).
 */
async function run(lossPct: number, agentLoss = 0) {
  buildNative();
  net = await nativeNet(2, lossPct ? { loss: lossPct } : {});
  const extra = agentLoss ? { loss: agentLoss } : {};
  await net.startAgent('node1', { ram: '128M', ...extra });
  await net.startAgent('node2', { ram: '128M', ...extra });
  const connect = async (n: string) => {
    const c = await AgentClient.connect(net!.url(n, agentLoss || undefined), { node: n, key: net!.key, connectTimeoutMs: 10_000 });
    clients.push(c);
    return c;
  };
  const [src, dst] = [await connect('node1'), await connect('node2')];
  await src.request('boot', { ramBytes: 64 * MiB, spec: workloadSpec({ workingSetBytes: 16 * MiB, dirtyRate: 4e6, fill: 'halfRandom' }) });
  await new Promise((r) => setTimeout(r, 100));
  const s = await migrate({ src, dst, dstDataHost: net.mac('node2'), observer: new HeartbeatObserver(), options: { downtimeLimitMs: 200, timeoutMs: 60_000 } });
  return { s, src, dst };
}

describe.skipIf(why !== null)('migrate between native hosted agents over raw frames', () => {
  it('moves a running guest, verifies, and the guest continues', async () => {
    const { s, src, dst } = await run(0);
    expect(s.error).toBeUndefined();
    expect(s.ok).toBe(true);
    expect(s.verified).toBe(true);
    expect(s.guestContinued).toBe(true);
    expect(s.zeroPages).toBeGreaterThan(0);
    expect((await src.request('state', {})).guest).toBe('released');
    expect((await dst.request('state', {})).guest).toBe('running');
    const before = (await readHeartbeat(dst))!.counter;
    await new Promise((r) => setTimeout(r, 100));
    expect((await readHeartbeat(dst))!.counter).toBeGreaterThan(before + 20n);
    console.log(`native migrate: ${s.rounds} rounds, ${(s.bytesSent / MiB).toFixed(1)} MiB, ${s.totalMs.toFixed(0)} ms total, downtime ${s.downtimeMs.toFixed(1)} ms (guest saw ${s.guestDowntimeMs?.toFixed(1)} ms)`);
  });

  it('completes correctly when the agents and the coordinator drop 5 % of what they receive', async () => {
    const { s, dst } = await run(0, 0.05);
    expect(s.error).toBeUndefined();
    expect(s.verified).toBe(true);
    expect(s.guestContinued).toBe(true);
    expect((await dst.request('state', {})).guest).toBe('running');
    const [a, b] = [await net!.stats('node1'), await net!.stats('node2')];
    expect((a.lossDropped ?? 0) + (b.lossDropped ?? 0)).toBeGreaterThan(50);
    expect(a.retransmits + b.retransmits).toBeGreaterThan(0);
    console.log(`native migrate, 5 % dropped by the agents: downtime ${s.downtimeMs.toFixed(1)} ms; dropped ${a.lossDropped}/${b.lossDropped}, retransmitted ${a.retransmits}/${b.retransmits}`);
  });

  it.skipIf(whyNoLoss !== null)('completes correctly with 5 % frame loss in the network', async () => {
    const { s, dst } = await run(5);
    expect(s.error).toBeUndefined();
    expect(s.ok).toBe(true);
    expect(s.verified).toBe(true);
    expect(s.guestContinued).toBe(true);
    expect((await dst.request('state', {})).guest).toBe('running');
    const st = await net!.stats('node1');
    const loss = networkLoss(net!.prefix);
    expect(loss.mode).not.toBe('none');
    // binomial: within 5 standard deviations of 5 % of the frames the bridge forwarded
    expect(loss.frames).toBeGreaterThan(500);
    expect(Math.abs(loss.dropped / loss.frames - 0.05)).toBeLessThan(5 * Math.sqrt((0.05 * 0.95) / loss.frames));
    expect(st.lossDropped ?? 0).toBe(0);
    expect(st.retransmits).toBeGreaterThan(0);
    console.log(`native migrate, 5 % loss by ${loss.mode}: ${s.rounds} rounds, ${s.totalMs.toFixed(0)} ms total, downtime ${s.downtimeMs.toFixed(1)} ms; the network dropped ${loss.dropped} of ${loss.frames} frames (${((100 * loss.dropped) / loss.frames).toFixed(2)} %); source agent retransmitted ${st.retransmits} frames (RACK ${st.rackLost}, probes ${st.probes}, timeouts ${st.timeouts})`);
  });
});
