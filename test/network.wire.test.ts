import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  HEADER_SEQNO64B,
  IPERF_MIN_PAYLOAD,
  SERVER_REPORT_LEN,
  parseDatagram,
  parseServerReport,
  readSeq,
  writeDatagram,
  writeSeq,
  writeServerReport,
} from '../src/sim/guest/net/iperf2.js';
import {
  ARP_REPLY,
  ARP_REQUEST,
  ETH_HLEN,
  ICMP_ECHO_REQUEST,
  IPPROTO_UDP,
  buildArp,
  buildIcmpEcho,
  buildUdp,
  gratuitousArp,
  internetChecksum,
  ipToString,
  parseArp,
  parseIcmp,
  parseIp,
  parseIpv4,
  parseUdp,
  rd16,
  wr16,
} from '../src/sim/guest/net/wire.js';
import { completeL4Checksum } from '../src/sim/network/bridge.js';
import { macFromName, macToString, parseMac } from '../src/sim/network/mac.js';

const A = [0x52, 0x54, 0, 0, 0, 0x0a];
const B = [0x52, 0x54, 0, 0, 0, 0x0b];
const ipA = parseIp('10.77.0.2');
const ipB = parseIp('10.77.0.1');

describe('Internet checksum (RFC 1071)', () => {
  it('matches the RFC 1071 worked example and verifies to zero', () => {
    const b = Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
    // Sum 0x2ddf0 folds to 0xddf2; the checksum is its complement.
    expect(internetChecksum(b, 0, 8)).toBe(~0xddf2 & 0xffff);
    const withSum = new Uint8Array(10);
    withSum.set(b);
    wr16(withSum, 8, internetChecksum(b, 0, 8));
    expect(internetChecksum(withSum, 0, 10)).toBe(0);
  });
  it('pads an odd length with a zero byte', () => {
    expect(internetChecksum(Uint8Array.from([0xab]), 0, 1)).toBe(~0xab00 & 0xffff);
  });
});

describe('IPv4', () => {
  it('parses addresses and rejects malformed ones', () => {
    expect(ipToString(parseIp('192.168.7.250'))).toBe('192.168.7.250');
    for (const bad of ['10.0.0', '10.0.0.256', 'a.b.c.d', '1.2.3.4.5']) expect(() => parseIp(bad)).toThrow();
  });
  it('writes a header whose checksum verifies; a flipped bit is rejected', () => {
    const f = buildUdp({ dstMac: B, srcMac: A, src: ipA, dst: ipB, srcPort: 1, dstPort: 2, id: 0x1234 }, 10, () => {});
    const ip = parseIpv4(f)!;
    expect(ip).toMatchObject({ ihl: 20, totalLength: 38, id: 0x1234, ttl: 64, protocol: IPPROTO_UDP, src: ipA, dst: ipB, fragment: false });
    expect(f[ETH_HLEN]).toBe(0x45);
    expect(rd16(f, ETH_HLEN + 6)).toBe(0x4000); // DF, no fragmentation
    f[ETH_HLEN + 8] ^= 1;
    expect(parseIpv4(f)).toBeNull();
  });
  it('rejects a total length beyond the frame and flags fragments', () => {
    const f = buildUdp({ dstMac: B, srcMac: A, src: ipA, dst: ipB, srcPort: 1, dstPort: 2, id: 1 }, 4, () => {});
    const g = Uint8Array.from(f);
    wr16(g, ETH_HLEN + 6, 0x2000); // MF
    wr16(g, ETH_HLEN + 10, 0);
    wr16(g, ETH_HLEN + 10, internetChecksum(g, ETH_HLEN, 20));
    expect(parseIpv4(g)!.fragment).toBe(true);
    const h = Uint8Array.from(f);
    wr16(h, ETH_HLEN + 2, 2000);
    wr16(h, ETH_HLEN + 10, 0);
    wr16(h, ETH_HLEN + 10, internetChecksum(h, ETH_HLEN, 20));
    expect(parseIpv4(h)).toBeNull();
  });
});

describe('ARP', () => {
  it('builds and parses requests and replies, padded to 60 bytes', () => {
    const req = buildArp([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], A, { op: ARP_REQUEST, senderMac: A, senderIp: ipA, targetMac: [0, 0, 0, 0, 0, 0], targetIp: ipB });
    expect(req.length).toBe(60);
    expect(rd16(req, 12)).toBe(0x0806);
    expect(parseArp(req)).toEqual({ op: ARP_REQUEST, senderMac: A, senderIp: ipA, targetMac: [0, 0, 0, 0, 0, 0], targetIp: ipB });
    const rep = buildArp(A, B, { op: ARP_REPLY, senderMac: B, senderIp: ipB, targetMac: A, targetIp: ipA });
    expect(parseArp(rep)!.op).toBe(ARP_REPLY);
    expect(parseArp(rep.subarray(0, 30))).toBeNull();
  });
  it('a gratuitous ARP is a broadcast request for our own address', () => {
    const g = gratuitousArp(A, ipA);
    expect(Array.from(g.subarray(0, 6))).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect(Array.from(g.subarray(6, 12))).toEqual(A);
    expect(parseArp(g)).toMatchObject({ op: ARP_REQUEST, senderIp: ipA, targetIp: ipA, senderMac: A });
  });
});

describe('ICMP echo and UDP', () => {
  it('an echo message carries its data and a valid checksum', () => {
    const data = Uint8Array.from({ length: 56 }, (_, i) => i);
    const f = buildIcmpEcho({ dstMac: B, srcMac: A, src: ipA, dst: ipB, id: 7, type: ICMP_ECHO_REQUEST, ident: 0x4242, seq: 9 }, data);
    const ip = parseIpv4(f)!;
    const m = parseIcmp(f, ip)!;
    expect(m).toMatchObject({ type: ICMP_ECHO_REQUEST, code: 0, ident: 0x4242, seq: 9, dataLen: 56 });
    expect(Array.from(f.subarray(m.dataOff, m.dataOff + 56))).toEqual(Array.from(data));
    f[m.dataOff + 3] ^= 0x80;
    expect(parseIcmp(f, ip)).toBeNull();
  });
  it('UDP checksums cover the pseudo-header; zero means none; corruption is caught', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }), (payload, sp, dp) => {
        const f = buildUdp({ dstMac: B, srcMac: A, src: ipA, dst: ipB, srcPort: sp, dstPort: dp, id: 1 }, payload.length, (fr, off) => fr.set(payload, off));
        const ip = parseIpv4(f)!;
        const u = parseUdp(f, ip)!;
        expect(u).toMatchObject({ srcPort: sp, dstPort: dp, payloadLen: payload.length });
        expect(rd16(f, u.payloadOff - 2)).not.toBe(0);
        if (payload.length > 0) {
          const g = Uint8Array.from(f);
          g[u.payloadOff] ^= 0x01;
          expect(parseUdp(g, ip)).toBeNull();
          wr16(g, u.payloadOff - 2, 0); // no checksum: accepted as is
          expect(parseUdp(g, ip)).not.toBeNull();
        }
      }),
      { numRuns: 200 },
    );
  });
  it('completes a partial (offloaded) UDP checksum the way a NIC does', () => {
    const f = buildUdp({ dstMac: B, srcMac: A, src: ipA, dst: ipB, srcPort: 5001, dstPort: 5001, id: 3 }, 128, (fr, off) => fr.fill(7, off, off + 128));
    const good = rd16(f, ETH_HLEN + 20 + 6);
    wr16(f, ETH_HLEN + 20 + 6, 0x1234); // what CHECKSUM_PARTIAL leaves: a pseudo-header sum
    expect(parseUdp(f, parseIpv4(f)!)).toBeNull();
    completeL4Checksum(f);
    expect(rd16(f, ETH_HLEN + 20 + 6)).toBe(good);
    expect(parseUdp(f, parseIpv4(f)!)).not.toBeNull();
  });
});

describe('iperf2 UDP datagrams', () => {
  it('lays out id, tv_sec, tv_usec, id2 and the client header flags big-endian', () => {
    const b = new Uint8Array(IPERF_MIN_PAYLOAD + 8).fill(0xee);
    writeDatagram(b, 4, 0x1_0000_0002, 1_700_000_000_123_456_789);
    const hex = Buffer.from(b.subarray(4, 24)).toString('hex');
    expect(hex).toBe('00000002' + (1_700_000_000).toString(16).padStart(8, '0') + (123_456).toString(16).padStart(8, '0') + '00000001' + HEADER_SEQNO64B.toString(16).padStart(8, '0'));
    expect(Array.from(b.subarray(24, 44))).toEqual(new Array(20).fill(0));
    expect(b[0]).toBe(0xee);
    expect(parseDatagram(b, 4, IPERF_MIN_PAYLOAD)).toEqual({ seq: 0x1_0000_0002, sec: 1_700_000_000, usec: 123_456, flags: HEADER_SEQNO64B });
  });
  it('a FIN is the negated sequence number, the same in 32-bit and 64-bit readings', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 52), max: 2 ** 52 }), (seq) => {
        const b = new Uint8Array(16);
        writeSeq(b, 0, seq);
        expect(readSeq(b, 0)).toBe(seq);
        if (Math.abs(seq) < 2 ** 31) expect(new DataView(b.buffer).getInt32(0, false)).toBe(seq);
      }),
    );
    const b = new Uint8Array(16);
    writeSeq(b, 0, -101);
    expect(Buffer.from(b).toString('hex')).toBe('ffffff9b' + '0'.repeat(16) + 'ffffffff');
  });
  it('reads the report a real iperf 2.1.8 server sent back for a FIN', () => {
    // Captured from `iperf -s -u` (2.1.8): 100 datagrams sent, one (id 50) left out, FIN id -101.
    const hex = '00000000000000000000000000000000' + '88000000' + '00000000' + '00023e38' + '00000000' + '0003584f' + '00000001' + '00000000' + '00000065' + '00000000' + '0000014a';
    const b = new Uint8Array(SERVER_REPORT_LEN);
    b.set(Buffer.from(hex, 'hex'));
    const r = parseServerReport(b, 0, b.length)!;
    expect(r).toEqual({ flags: 0x88000000, bytes: 147000, durationUs: 219215, lost: 1, outOfOrder: 0, datagrams: 101, jitterUs: 330 });
    const out = new Uint8Array(SERVER_REPORT_LEN);
    writeServerReport(out, 0, r);
    expect(Buffer.from(out.subarray(0, hex.length / 2)).toString('hex')).toBe(hex);
    expect(parseServerReport(new Uint8Array(SERVER_REPORT_LEN), 0, SERVER_REPORT_LEN)).toBeNull(); // no VERSION1 flag: a data datagram
  });
});

describe('MAC addresses', () => {
  it('parse, print, and derive stable locally administered unicast addresses', () => {
    expect(parseMac('52:54:00:12:34:56')).toEqual([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    expect(() => parseMac('52:54:00:12:34')).toThrow();
    expect(macToString([0x52, 0x54, 0, 0x12, 0x34, 0x56])).toBe('52:54:00:12:34:56');
    const m = macFromName('node17');
    expect(m).toEqual(macFromName('node17'));
    expect(m).not.toEqual(macFromName('node42'));
    expect(m[0]! & 0x03).toBe(0x02);
  });
});
