/**
 * `iperf-downtime`, small: a 256 MiB guest streams UDP to a real `iperf -s -u`
 * and answers a real `ping` in a network namespace, and is live-migrated
 * node17 → node42 over a 1 Gb/s-capped page stream. iperf and ping must see
 * the stream before and after the migration, and the gap they measure must
 * stay below a bound derived from the run's own downtime.
 *
 * Needs root, ip, iperf, ping, stdbuf and the 'pcap' package (CI installs
 * them); skips with the reason otherwise.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runIperfDowntime } from '../src/experiments/iperfDowntime.js';
import { writeIperfDowntimeOutputs } from '../src/experiments/iperfReport.js';
import { realPeersMissing } from '../src/experiments/system.js';

const skipReason = realPeersMissing();
if (skipReason) console.warn(`iperf-downtime experiment test skipped: ${skipReason}`);

const out = mkdtempSync(join(tmpdir(), 'baremig-exp-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe.skipIf(skipReason !== null)('experiment iperf-downtime (256 MiB, a few seconds)', () => {
  it('iperf and ping see the stream on both sides of the migration, and a gap bounded by the downtime', async () => {
    const run = await runIperfDowntime({
      ramBytes: 256 * 2 ** 20,
      linkBytesPerSec: 125e6,
      dirtyRateBytesPerSec: 4e6,
      streamBitsPerSec: 4e6,
      datagramBytes: 1000,
      downtimeLimitMs: 100,
      warmupMs: 1500,
      afterMs: 1500,
      iperfIntervalS: 0.1,
      pingIntervalMs: 10,
      seed: 7,
      outDir: out,
      progress: () => {},
    });
    const r = await writeIperfDowntimeOutputs(run, out);
    const s = run.summary;
    expect(s.error).toBeUndefined();
    expect(s.ok && s.verified).toBe(true);
    const stop = run.phases.stopWallMs!;
    const commit = run.phases.commitWallMs!;
    console.info(`iperf-downtime 256 MiB: engine ${r.downtime.engineMs} ms, heartbeat ${r.downtime.guestHeartbeatMs} ms, ping ${r.downtime.pingMs} ms (${r.downtime.pingLost} lost), iperf ${r.downtime.iperfMs} ms; pre-copy ${r.precopy?.precopyMs.toFixed(0)} ms = ${r.target.precopyRatio}× limit`);

    // iperf counted the stream before the pause and after the guest ran on node42.
    const iv = run.iperf.intervals;
    expect(iv.filter((x) => x.endWallMs < stop && x.bytes > 0).length).toBeGreaterThanOrEqual(10);
    expect(iv.filter((x) => x.startWallMs > commit && x.bytes > 0).length).toBeGreaterThanOrEqual(8);
    // …at (nearly) its rate on both sides: 4 Mbit/s = 50 datagrams per 0.1 s (two busy cores may cost a little).
    expect(r.throughputMbitPerSec.warmup).toBeGreaterThan(3.2);
    expect(r.throughputMbitPerSec.after).toBeGreaterThan(3.2);
    // ping got answers from node17 before and from node42 after.
    const answered = run.ping.records.filter((p) => !p.lost);
    expect(answered.filter((p) => p.replyWallMs! < stop).length).toBeGreaterThanOrEqual(50);
    expect(answered.filter((p) => p.sentWallMs > commit).length).toBeGreaterThanOrEqual(50);
    expect(run.switchMoves.map((m) => `${m.from}->${m.to}`)).toEqual(['node17->node42']);

    // The gaps the real tools measured: real, and within the run's own downtime plus their resolution and 200 ms.
    const pause = Math.max(s.downtimeMs, s.guestDowntimeMs ?? 0);
    expect(r.downtime.pingMs).not.toBeNull();
    expect(r.downtime.iperfMs).not.toBeNull();
    expect(r.downtime.pingMs!).toBeGreaterThan(0);
    expect(r.downtime.pingMs!).toBeLessThan(pause + r.downtime.pingSpacingMs + 200);
    expect(r.downtime.iperfMs!).toBeLessThan(pause + 200);
    expect(r.stream.iperfOutOfOrder).toBeLessThanOrEqual(3);

    // The outputs: CSV series on one clock, the figure, the table.
    for (const f of ['iperf.csv', 'ping.csv', 'events.csv', 'throughput.svg', 'throughput.png', 'table.md', 'results.json']) expect(statSync(join(out, f)).size, f).toBeGreaterThan(100);
    expect(readFileSync(join(out, 'iperf.csv'), 'utf8').split('\n')[0]).toContain('start_wall_ms');
    expect(readFileSync(join(out, 'events.csv'), 'utf8')).toContain(',phase,stop,');
    expect(readFileSync(join(out, 'throughput.svg'), 'utf8')).toContain('stop-and-copy');
    expect(readFileSync(join(out, 'throughput.png')).subarray(1, 4).toString()).toBe('PNG');
    expect(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).downtime.engineMs).toBe(r.downtime.engineMs);
    expect(existsSync(join(out, 'raw', 'ping.txt'))).toBe(true);
  }, 180_000);
});
