/**
 * `baremig migrate` (the CLI as a child process) between two native hosted
 * agents in network namespaces: the nodes file names them by l2 addresses
 * (l2://mig0/<link MAC>?netns=<coordinator namespace>), the CLI connects
 * through the l2 transport, the engine streams pages agent to agent over raw
 * frames, verifies, and the guest's heartbeat goes on on the destination.
 * Then again with 5 % frame loss: this kernel has no sch_netem (checked: if
 * `tc … netem` works, netem does the loss instead), so the agents' --loss
 * and the coordinator helpers' loss parameter drop 5 % of the frames reaching
 * every endpoint.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/protocol/client.js';
import { readHeartbeat } from '../../src/sim/guest/observer.js';
import { workloadSpec } from '../helpers.js';
import { HYPERVISOR, MiB, type NativeNet, REPO, buildNative, nativeNet, nativeUnavailable } from './targets.js';

const run = promisify(execFile);
const MAIN = join(REPO, 'src/cli/main.ts');
const why = nativeUnavailable();
if (why) console.log(`native CLI migration skipped: ${why}`);

/** Does this kernel have netem? (`up.sh --loss` exits 3 without it.) */
function netemAvailable(): boolean {
  const probe = `bmne${process.pid % 1000}`;
  try {
    execFileSync(join(HYPERVISOR, 'netns/up.sh'), [probe, '--nodes', '1', '--loss', '1'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    execFileSync(join(HYPERVISOR, 'netns/down.sh'), [probe], { stdio: 'ignore' });
  }
}

let net: NativeNet | null = null;
const clients: AgentClient[] = [];
const dir = mkdtempSync(join(tmpdir(), 'baremig-cli-native-'));
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await net?.stop();
  net = null;
});

async function cliMigrate(loss: number): Promise<{ code: number; j: Record<string, unknown>; stderr: string }> {
  buildNative();
  const netem = loss > 0 && netemAvailable();
  net = await nativeNet(2, netem ? { loss: loss * 100 } : {});
  const agentLoss = netem ? 0 : loss;
  await net.startAgent('node1', { loss: agentLoss, ram: '128M' });
  await net.startAgent('node2', { loss: agentLoss, ram: '128M' });
  // the guest is booted over the protocol (a real node boots its own OS)
  const src = await AgentClient.connect(net.url('node1'), { node: 'node1', key: net.key });
  clients.push(src);
  await src.request('boot', { ramBytes: 64 * MiB, spec: workloadSpec({ workingSetBytes: 16 * MiB, dirtyRate: 4e6, fill: 'halfRandom' }) });
  src.close();
  const nodesFile = join(dir, `nodes-${loss}.yaml`);
  const lines = ['cluster:', `  keyFile: ${net.keyFile}`, 'nodes:'];
  for (const n of ['node1', 'node2']) lines.push(`  ${n}:`, `    agent: ${net.url(n, netem ? 0 : loss)}`, '    ram: 128M');
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

  it('still migrates correctly with 5 % frame loss', async () => {
    const { code, j, stderr } = await cliMigrate(0.05);
    expect(j.error, stderr).toBeUndefined();
    expect(code).toBe(0);
    expect(j).toMatchObject({ ok: true, verified: true, guestContinued: true });
    const st = await net!.stats('node1');
    await destinationRuns();
    console.log(`CLI native migrate, 5 % loss: ${j.rounds} rounds, ${j.totalMs} ms total, downtime ${j.downtimeMs} ms; source agent retransmitted ${st.retransmits} (RACK ${st.rackLost}, probes ${st.probes}, timeouts ${st.timeouts}), dropped ${st.lossDropped}; destination agent timeouts ${(await net!.stats('node2')).timeouts}`);
    rmSync(dir, { recursive: true, force: true });
  });
});
