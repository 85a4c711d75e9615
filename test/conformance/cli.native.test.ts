/**
 * `baremig migrate` (the CLI as a child process) between two native hosted
 * agents in network namespaces: the nodes file names them by l2 addresses
 * (l2://mig0/<link MAC>?netns=<coordinator namespace>), the CLI connects
 * through the l2 transport, the engine streams pages agent to agent over raw
 * frames, verifies, and the guest's heartbeat goes on on the destination.
 * Then again with 5 % frame loss in the network: `up.sh --loss 5` drops 5 %
 * of the frames crossing the bridge (netem on the bridge ports where the
 * kernel has sch_netem, else an nftables bridge rule, as on the CI kernel).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/protocol/client.js';
import { readHeartbeat } from '../../src/sim/guest/observer.js';
import { workloadSpec } from '../helpers.js';
import { networkLoss, networkLossUnavailable } from './netLoss.js';
import { MiB, type NativeNet, REPO, buildNative, nativeNet, nativeUnavailable } from './targets.js';

const run = promisify(execFile);
const MAIN = join(REPO, 'src/cli/main.ts');
const why = nativeUnavailable();
if (why) console.log(`native CLI migration skipped: ${why}`);
const whyNoLoss = why ?? networkLossUnavailable();
if (!why && whyNoLoss) console.log(`native CLI migration with network loss skipped: ${whyNoLoss}`);

let net: NativeNet | null = null;
const clients: AgentClient[] = [];
const dir = mkdtempSync(join(tmpdir(), 'baremig-cli-native-'));
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await net?.stop();
  net = null;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** lossPct: frames lost in the network (the bridge), percent. */
async function cliMigrate(lossPct: number): Promise<{ code: number; j: Record<string, unknown>; stderr: string }> {
  buildNative();
  net = await nativeNet(2, lossPct ? { loss: lossPct } : {});
  await net.startAgent('node1', { ram: '128M' });
  await net.startAgent('node2', { ram: '128M' });
  // the guest is booted over the protocol (a real node boots its own OS)
  const src = await AgentClient.connect(net.url('node1'), { node: 'node1', key: net.key });
  clients.push(src);
  await src.request('boot', { ramBytes: 64 * MiB, spec: workloadSpec({ workingSetBytes: 16 * MiB, dirtyRate: 4e6, fill: 'halfRandom' }) });
  src.close();
  const nodesFile = join(dir, `nodes-${lossPct}.yaml`);
  const lines = ['cluster:', `  keyFile: ${net.keyFile}`, 'nodes:'];
  for (const n of ['node1', 'node2']) lines.push(`  ${n}:`, `    agent: ${net.url(n)}`, '    ram: 128M');
  writeFileSync(nodesFile, `${lines.join('\n')}\n`);
  let code = 0;
  let stdout = '';
  let stderr = '';
  try {
    ({ stdout, stderr } = await run(process.execPath, ['--import', 'tsx', MAIN, '--nodes-file', nodesFile, 'migrate', 'node1', 'node2', '--json', '--downtime-limit', '200', '--timeout', '60s'], { cwd: REPO, timeout: 90_000 }));
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    code = typeof x.code === 'number' ? x.code : -1;
    stdout = x.stdout;
    stderr = x.stderr;
  }
  let j: Record<string, unknown> = {};
  try {
    j = JSON.parse(stdout) as Record<string, unknown>;
  } catch {
    throw new Error(`baremig migrate printed no JSON (exit ${code}): ${stdout}\n${stderr}`);
  }
  return { code, j, stderr };
}

async function destinationRuns(): Promise<void> {
  const dst = await AgentClient.connect(net!.url('node2'), { node: 'node2', key: net!.key });
  clients.push(dst);
  const src = await AgentClient.connect(net!.url('node1'), { node: 'node1', key: net!.key });
  clients.push(src);
  expect((await dst.request('state', {})).guest).toBe('running');
  expect((await src.request('state', {})).guest).toBe('released');
  const before = (await readHeartbeat(dst))!.counter;
  await new Promise((r) => setTimeout(r, 100));
  expect((await readHeartbeat(dst))!.counter).toBeGreaterThan(before + 20n);
}

describe.skipIf(why !== null)('baremig migrate (CLI) between native agents over l2 addresses', () => {
  it('migrates a running guest: verified, the guest continues', async () => {
    const { code, j, stderr } = await cliMigrate(0);
    expect(j.error, stderr).toBeUndefined();
    expect(code).toBe(0);
    expect(j).toMatchObject({ ok: true, verified: true, guestContinued: true, source: 'node1', destination: 'node2' });
    expect(j.zeroPages as number).toBeGreaterThan(0);
    await destinationRuns();
    console.log(`CLI native migrate: ${j.rounds} rounds, ${j.totalMs} ms total, downtime ${j.downtimeMs} ms (guest saw ${j.guestDowntimeMs} ms)`);
  });

  it('an l2 agent that cannot be reached: one line naming the node, exit 1', async () => {
    const f = join(dir, 'unreachable.yaml');
    writeFileSync(f, `cluster:\n  key: ${'ab'.repeat(32)}\nnodes:\n  node1:\n    agent: l2://nosuch0/02:62:6d:00:00:01\n  node2:\n    agent: l2://nosuch0/02:62:6d:00:00:02\n`);
    let code = 0;
    let stdout = '';
    try {
      ({ stdout } = await run(process.execPath, ['--import', 'tsx', MAIN, '--nodes-file', f, 'migrate', 'node1', 'node2', '--json'], { cwd: REPO, timeout: 30_000 }));
    } catch (e) {
      ({ code, stdout } = e as { code: number; stdout: string });
    }
    expect(code).toBe(1);
    const j = JSON.parse(stdout) as { ok: boolean; error: { code: string; message: string } };
    expect(j.ok).toBe(false);
    expect(j.error.code).toBe('AGENT_UNREACHABLE');
    expect(j.error.message).toMatch(/^agent node[12]: agent at l2:\/\/nosuch0\/02:62:6d:00:00:0[12]: interface nosuch0: No such device/);
  });

  it.skipIf(whyNoLoss !== null)('still migrates correctly with 5 % frame loss in the network', async () => {
    const { code, j, stderr } = await cliMigrate(5);
    expect(j.error, stderr).toBeUndefined();
    expect(code).toBe(0);
    expect(j).toMatchObject({ ok: true, verified: true, guestContinued: true });
    const st = await net!.stats('node1');
    const loss = networkLoss(net!.prefix);
    expect(loss.mode).not.toBe('none');
    // binomial: within 5 standard deviations of 5 % of the frames the bridge forwarded
    expect(loss.frames).toBeGreaterThan(500);
    expect(Math.abs(loss.dropped / loss.frames - 0.05)).toBeLessThan(5 * Math.sqrt((0.05 * 0.95) / loss.frames));
    expect(st.lossDropped ?? 0).toBe(0);
    await destinationRuns();
    console.log(`CLI native migrate, 5 % loss by ${loss.mode}: ${j.rounds} rounds, ${j.totalMs} ms total, downtime ${j.downtimeMs} ms; the network dropped ${loss.dropped} of ${loss.frames} frames (${((100 * loss.dropped) / loss.frames).toFixed(2)} %); source agent retransmitted ${st.retransmits} (RACK ${st.rackLost}, probes ${st.probes}, timeouts ${st.timeouts}); destination agent timeouts ${(await net!.stats('node2')).timeouts}`);
  });
});
