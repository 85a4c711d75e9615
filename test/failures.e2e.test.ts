import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { migrate } from '../src/engine/migration.js';
import type { Phase } from '../src/engine/types.js';
import { checksumAfter } from '../src/sim/guest/heartbeat.js';
import { KERNEL_TEXT_ADDR, KERNEL_TEXT_BYTES } from '../src/sim/guest/layout.js';
import { HeartbeatObserver, readHeartbeat } from '../src/sim/guest/observer.js';
import { kernelText } from '../src/sim/guest/os.js';
import type { AgentClient } from '../src/protocol/client.js';
import { MiB, type TestCluster, startTestCluster, workloadSpec } from './helpers.js';

let cluster: TestCluster | null = null;
afterEach(async () => {
  await cluster?.stop();
  cluster = null;
});

async function twoNodes() {
  cluster = await startTestCluster([{ name: 'node17', boot: workloadSpec({ workingSetBytes: 8 * MiB, dirtyRate: 2e6 }), ramBytes: 16 * MiB }, { name: 'node42' }]);
  return { src: await cluster.client('node17'), dst: await cluster.client('node42') };
}

/** The guest is running on the source, its memory intact and its heartbeat chain unbroken. */
async function expectSourceIntact(src: AgentClient, before: { counter: bigint; checksum: bigint }) {
  expect((await src.request('state', {})).guest).toBe('running');
  const text = await src.request('memRead', { addr: KERNEL_TEXT_ADDR, len: KERNEL_TEXT_BYTES });
  expect(Buffer.from(text.data).equals(kernelText())).toBe(true);
  await new Promise((r) => setTimeout(r, 50));
  const after = (await readHeartbeat(src))!;
  expect(after.counter).toBeGreaterThan(before.counter);
  expect(checksumAfter(before.checksum, before.counter, after.counter)).toBe(after.checksum);
}

const phasesBeforeResume: Phase[] = ['setup', 'precopy', 'stop', 'final-copy', 'devices', 'vcpu', 'verify', 'resume'];

describe('a destination that dies before it runs the guest leaves the guest running on the source', () => {
  it.each(phasesBeforeResume)('destination killed as phase %s begins', async (phase) => {
    const { src, dst } = await twoNodes();
    const before = (await readHeartbeat(src))!;
    const s = await migrate({
      src,
      dst,
      dstDataHost: '127.0.0.1',
      observer: new HeartbeatObserver(),
      options: { downtimeLimitMs: 200 },
      onPhase: async (p) => {
        if (p !== phase) return;
        const node = cluster!.nodes.get('node42')!;
        node.kill('SIGKILL');
        await node.exited;
        await new Promise((r) => setTimeout(r, 30)); // let the coordinator notice the closed connection
      },
    });
    expect(s.ok).toBe(false);
    // Detected in the phase where the coordinator next needs the destination.
    expect(phasesBeforeResume.indexOf(s.error!.phase!)).toBeGreaterThanOrEqual(phasesBeforeResume.indexOf(phase));
    expect(s.error?.code).toMatch(/AGENT_UNREACHABLE|STREAM/);
    expect(s.error?.sourceRunning).toBe(true);
    expect(s.error?.message).toMatch(/node42/);
    await expectSourceIntact(src, before);
  });
});

/** A TCP proxy we can cut. */
async function proxy(targetPort: number): Promise<{ port: number; cut(): void; server: Server }> {
  const socks = new Set<Socket>();
  const server = createServer((c) => {
    const up = connect(targetPort, '127.0.0.1');
    socks.add(c).add(up);
    c.pipe(up).pipe(c);
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as { port: number }).port, server, cut: () => socks.forEach((s) => s.destroy()) };
}

describe('a cut page stream rolls back', () => {
  it.each<Phase>(['precopy', 'final-copy'])('stream cut during %s', async (phase) => {
    const { src, dst } = await twoNodes();
    const before = (await readHeartbeat(src))!;
    let px: Awaited<ReturnType<typeof proxy>> | null = null;
    let target = 0;
    const s = await migrate({
      src,
      dst,
      dstDataHost: '127.0.0.1',
      options: { downtimeLimitMs: 200, bandwidth: 20e6 },
      peerAddress: (host, port) => {
        target = port;
        return { host, port: px!.port };
      },
      onPhase: async (p) => {
        if (p === 'setup') px = await proxy(0);
        if (p === 'precopy' && target && px!.port) {
          // re-point the proxy at the real port now that we know it
          px!.server.close();
          px = await proxy(target);
        }
        if (p === phase) setTimeout(() => px!.cut(), phase === 'precopy' ? 20 : 0);
      },
    });
    px!.server.close();
    expect(s.ok).toBe(false);
    expect(s.error?.code).toBe('STREAM');
    expect(s.error?.sourceRunning).toBe(true);
    expect((await dst.request('state', {})).guest).toBe('released');
    await expectSourceIntact(src, before);
  });
});

describe('a destination that goes silent while resuming', () => {
  it('keeps the source paused (UNCERTAIN): never two running copies', async () => {
    cluster = await startTestCluster([{ name: 'node17', boot: workloadSpec({ workingSetBytes: 4 * MiB, dirtyRate: 1e6 }), ramBytes: 16 * MiB }, { name: 'node42' }]);
    const src = await cluster.client('node17');
    const h = cluster.nodes.get('node42')!;
    const { AgentClient } = await import('../src/protocol/client.js');
    const dst = await AgentClient.connect(h.url, { node: 'node42', key: cluster.key, requestTimeoutMs: 1500 });
    const s = await migrate({
      src,
      dst,
      dstDataHost: '127.0.0.1',
      options: { downtimeLimitMs: 200 },
      onPhase: (p) => {
        if (p === 'resume') h.kill('SIGSTOP');
      },
    });
    expect(s.ok).toBe(false);
    expect(s.error?.code).toBe('UNCERTAIN');
    expect(s.error?.sourceRunning).toBe(false);
    expect(s.error?.message).toMatch(/stays paused/);
    expect((await src.request('state', {})).guest).toBe('paused');
    h.kill('SIGCONT');
    // The destination acts on the resume it got: the one running copy is there.
    const dst2 = await cluster.client('node42').catch(() => null);
    const state = dst2 ? (await dst2.request('state', {})).guest : 'unknown';
    expect(['running', 'released']).toContain(state);
    expect((await src.request('state', {})).guest).toBe('paused');
    dst.close();
  });
});

describe('cancel and time limit act in the middle of a round', () => {
  it('a cancel during a long first pass rolls back within a fraction of the round', async () => {
    const { src, dst } = await twoNodes();
    const before = (await readHeartbeat(src))!;
    const ac = new AbortController();
    const t0 = performance.now();
    // 8 MiB of random pages at 4 MB/s: the first pass alone would take ~2 s.
    setTimeout(() => ac.abort(), 300);
    const s = await migrate({ src, dst, dstDataHost: '127.0.0.1', options: { bandwidth: 4e6, signal: ac.signal } });
    const took = performance.now() - t0;
    expect(s.ok).toBe(false);
    expect(s.error?.code).toBe('CANCELLED');
    expect(s.error?.sourceRunning).toBe(true);
    expect(took).toBeLessThan(1200);
    await expectSourceIntact(src, before);
  });

  it('the time limit interrupts a round too', async () => {
    const { src, dst } = await twoNodes();
    const t0 = performance.now();
    const s = await migrate({ src, dst, dstDataHost: '127.0.0.1', options: { bandwidth: 4e6, timeoutMs: 300 } });
    expect(s.error?.code).toBe('TIMEOUT');
    expect(s.error?.sourceRunning).toBe(true);
    expect(performance.now() - t0).toBeLessThan(1200);
  });
});
