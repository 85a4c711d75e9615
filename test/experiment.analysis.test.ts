/** The experiments' readers of iperf and ping output, and the outage measures, on hand-made lines. */
import { describe, expect, it } from 'vitest';
import { iperfOutage, pingOutage } from '../src/experiments/analysis.js';
import { anchorIperf, parsePing } from '../src/experiments/parse.js';
import { toCsv } from '../src/experiments/render.js';

const T0 = 1_800_000_000_000; // wall ms of the stream's time 0

/** `iperf -s -u -i 0.1 -y C -e` lines: 100 datagrams of 1000 B per interval, `short` fewer in interval `at`; each line 3 ms after its interval (the earliest 2 ms). */
function iperfLines(n: number, at: number, short: number) {
  const lines = [];
  for (let i = 0; i < n; i++) {
    const got = i === at ? 100 - short : 100;
    const s = (i / 10).toFixed(1);
    const e = ((i + 1) / 10).toFixed(1);
    lines.push({ wallMs: T0 + (i + 1) * 100 + (i === 4 ? 2 : 3), line: `20270115083000.100,10.77.6.2,5001,10.77.6.1,5001,1,${s}-${e},${got * 1000},${got * 80000},0.010,0,${got},0.000,0` });
  }
  // At SIGINT: the partial last interval (one decimal: zero length), then the totals.
  lines.push({ wallMs: T0 + n * 100 + 40, line: `20270115083000.100,10.77.6.2,5001,10.77.6.1,5001,1,${(n / 10).toFixed(1)}-${(n / 10).toFixed(1)},30000,8000000,0.010,0,30,0.000,0` });
  lines.push({ wallMs: T0 + n * 100 + 50, line: `20270115083000.100,10.77.6.2,5001,10.77.6.1,5001,1,0.0-${(n / 10).toFixed(1)},${(n * 100 - short) * 1000},7900000,0.010,0,${n * 100 - short},0.000,0` });
  lines.push({ wallMs: T0 + n * 100 + 51, line: '[  3] WARNING: ack of last datagram failed.' });
  // Datagrams still arriving while the server shuts down: a transfer of their own.
  lines.push({ wallMs: T0 + n * 100 + 200, line: `20270115083000.100,10.77.6.2,5001,10.77.6.1,5001,2,0.0-0.1,100000,8000000,0.010,${n * 100},${n * 100 + 100},97.000,0` });
  return lines;
}

describe('iperf intervals on the wall clock', () => {
  it('anchors intervals by the earliest report and sets the totals line apart', () => {
    const s = anchorIperf(iperfLines(30, 12, 40), 0.1);
    expect(s.intervals).toHaveLength(30);
    expect(s.partial).toHaveLength(1);
    expect(s.others).toHaveLength(1);
    expect(s.intervals.every((x) => x.lost === 0)).toBe(true);
    expect(s.summary?.endS).toBe(3);
    expect(s.originWallMs).toBeCloseTo(T0 + 2, 6);
    expect(s.intervals[12]!.startWallMs).toBeCloseTo(T0 + 2 + 1200, 6);
    expect(s.intervals[12]!.bytes).toBe(60_000);
  });

  it('measures the shortfall around the switch-over as time', () => {
    const s = anchorIperf(iperfLines(30, 12, 40), 0.1);
    // 40 datagrams at 1000/s missing: 40 ms.
    const o = iperfOutage(s.intervals, 1000, T0 + 1230, T0 + 1270);
    expect(o.baselinePps).toBeCloseTo(1000, 6);
    expect(o.deficitMs).toBeCloseTo(40, 6);
    expect(o.minBitsPerSec).toBe(60 * 80000);
    expect(o.zeroIntervals).toBe(0);
  });
});

describe('ping replies and losses', () => {
  // Requests every 16 ms from seq 1. The guest is paused from 150 to 230:
  // 10 (sent at 160) waits in the NIC and is answered at 231; 11..14 are lost.
  const lines: Array<{ wallMs: number; line: string }> = [{ wallMs: T0, line: 'PING 10.77.6.2 (10.77.6.2) 56(84) bytes of data.' }];
  for (let seq = 1; seq <= 30; seq++) {
    const sent = T0 + seq * 16;
    if (seq >= 11 && seq <= 14) {
      lines.push({ wallMs: sent + 16, line: `[${((sent + 16) / 1000).toFixed(6)}] no answer yet for icmp_seq=${seq}` });
      continue;
    }
    const rtt = seq === 10 ? 231 - 160 : 0.5;
    lines.push({ wallMs: sent + rtt, line: `[${((sent + rtt) / 1000).toFixed(6)}] 64 bytes from 10.77.6.2: icmp_seq=${seq} ttl=64 time=${rtt} ms` });
  }
  lines.push({ wallMs: T0 + 600, line: '30 packets transmitted, 26 received, 13.3333% packet loss, time 480ms' });

  it('lists every request, interpolating the send time of lost ones', () => {
    const p = parsePing(lines, 10);
    expect(p.records).toHaveLength(30);
    expect(p.transmitted).toBe(30);
    expect(p.received).toBe(26);
    expect(p.records.filter((r) => r.lost).map((r) => r.seq)).toEqual([11, 12, 13, 14]);
    expect(p.records[11]!.sentWallMs).toBeCloseTo(T0 + 12 * 16, 3);
  });

  it('takes the gap between replies across the switch-over', () => {
    const p = parsePing(lines, 10);
    const o = pingOutage(p.records, T0 + 148, T0 + 232);
    expect(o.spacingMs).toBeCloseTo(16, 3);
    // The last reply before the pause (9, at 144.5) to the queued one (10, at 231).
    expect(o.switchGapMs).toBeCloseTo(231 - 144.5, 3);
    expect(o.switchGapFromWallMs).toBeCloseTo(T0 + 144.5, 3);
    expect(o.switchLost).toBe(4);
    expect(o.lostMs).toBeCloseTo(64, 3);
    expect(o.longestLostRun).toBe(4);
    expect(o.maxGapMs).toBeCloseTo(o.switchGapMs!, 6);
  });
});

describe('CSV', () => {
  it('quotes what must be quoted and leaves missing values empty', () => {
    expect(toCsv(['a', 'b', 'c'], [{ a: 1.23456, b: 'x,"y"', c: null }])).toBe('a,b,c\n1.235,"x,""y""",\n');
  });
});
