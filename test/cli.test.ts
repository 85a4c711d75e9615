import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterDown, clusterUp } from '../src/sim/localCluster.js';

const run = promisify(execFile);
const MAIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');

async function baremig(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', MAIN, ...args], { env: { ...process.env, ...env }, timeout: 120_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: typeof x.code === 'number' ? x.code : -1, stdout: x.stdout, stderr: x.stderr };
  }
}

const dir = mkdtempSync(join(tmpdir(), 'baremig-cli-'));
let nodesFile = '';

beforeAll(async () => {
  const { record } = await clusterUp({ dir, nodes: ['node17', 'node42'], ram: 32 * 1024 * 1024, guests: ['node17'], devices: [], dirtyRate: 2e6, fillFraction: 0.5, seed: 1, detached: true });
  nodesFile = record.nodesFile;
});
afterAll(async () => {
  await clusterDown(dir);
});

describe('baremig CLI', () => {
  it('nodes lists both nodes with their state', async () => {
    const r = await baremig(['--nodes-file', nodesFile, 'nodes', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.nodes.map((n: { name: string; guest: string }) => [n.name, n.guest])).toEqual([
      ['node17', 'running'],
      ['node42', 'none'],
    ]);
  });

  it('an unknown node name is a one-line actionable error, exit 2, nothing changed', async () => {
    const r = await baremig(['--nodes-file', nodesFile, 'migrate', 'node17', 'node99']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/unknown node 'node99'.*did you mean node17, node42\? \[UNKNOWN_NODE\]/);
  });

  it('a malformed nodes file names the line, exit 2', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'nodes:\n  node17:\n    agent: http://nowhere\n');
    const r = await baremig(['--nodes-file', bad, 'nodes']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/bad\.yaml:3: nodes\.node17\.agent: must be a ws/);
  });

  it('a wrong cluster key is refused by the agent: one line, exit 1', async () => {
    const wrong = join(dir, 'wrong.yaml');
    const { readFileSync } = await import('node:fs');
    writeFileSync(wrong, readFileSync(nodesFile, 'utf8').replace(/key: [0-9a-f]+/, `key: ${'00'.repeat(32)}`));
    const r = await baremig(['--nodes-file', wrong, 'migrate', 'node17', 'node42']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/wrong cluster key for node node(17|42).*\[AUTH\]/);
  });

  it('an unreachable agent: one line naming the node and address', async () => {
    const down = join(dir, 'down.yaml');
    writeFileSync(down, `cluster:\n  key: ${'ab'.repeat(32)}\nnodes:\n  node17:\n    agent: ws://127.0.0.1:1\n  node42:\n    agent: ws://127.0.0.1:2\n`);
    const r = await baremig(['--nodes-file', down, 'migrate', 'node17', 'node42', '--json']);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.ok).toBe(false);
    expect(j.error.code).toBe('AGENT_UNREACHABLE');
    expect(j.error.message).toMatch(/agent node(17|42) at ws:\/\/127\.0\.0\.1:[12]/);
  });

  it('bad flag values are refused before anything happens', async () => {
    const r = await baremig(['--nodes-file', nodesFile, 'migrate', 'node17', 'node42', '--bandwidth', 'fast']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--bandwidth 'fast' is not a rate/);
  });

  it('migrate moves the guest and reports the summary as JSON; the destination then runs it', async () => {
    const r = await baremig(['--nodes-file', nodesFile, 'migrate', 'node17', 'node42', '--downtime-limit', '200', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    for (const k of ['ok', 'totalMs', 'downtimeMs', 'guestDowntimeMs', 'rounds', 'bytesSent', 'zeroPages', 'verified']) expect(j).toHaveProperty(k);
    expect(j.ok).toBe(true);
    expect(j.verified).toBe(true);
    expect(j.guestContinued).toBe(true);
    const n = JSON.parse((await baremig(['--nodes-file', nodesFile, 'nodes', '--json'])).stdout);
    expect(n.nodes.map((x: { guest: string }) => x.guest)).toEqual(['released', 'running']);
    // And back again: node17 is free to receive it.
    const back = await baremig(['--nodes-file', nodesFile, 'migrate', 'node42', 'node17', '--json']);
    expect(JSON.parse(back.stdout).ok).toBe(true);
  });

  it('migrate from a node without a guest fails cleanly, exit 1', async () => {
    const r = await baremig(['--nodes-file', nodesFile, 'migrate', 'node42', 'node17']);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toMatch(/node42 has no running guest/);
  });
});
