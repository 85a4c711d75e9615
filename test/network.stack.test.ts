/**
 * The guest's network stack on a simulated node, driven through the real
 * RTL8169 model and each driver personality; the test plays the peer on the
 * other end of the cable.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MODULE_IDS } from '../src/sim/guest/layout.js';
import { NET_ANNOUNCE_DOORBELL, type NetView, moduleBase, parseNetRegion } from '../src/sim/guest/net/index.js';
import { FIN_TRIES, HEADER_VERSION1, SERVER_REPORT_LEN, parseDatagram, writeDatagram, writeServerReport } from '../src/sim/guest/net/iperf2.js';
import {
  ARP_REPLY,
  ARP_REQUEST,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  buildArp,
  buildIcmpEcho,
  buildUdp,
  parseArp,
  parseIcmp,
  parseIp,
  parseIpv4,
  parseUdp,
} from '../src/sim/guest/net/wire.js';
import { Machine } from '../src/sim/machine.js';
import { attachNic } from '../src/sim/network/nicPort.js';
import type { FramePort } from '../src/sim/network/udp.js';

const GUEST_MAC = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const PEER_MAC = [0x02, 0, 0, 0, 0, 0x99];
const GUEST_IP = parseIp('10.77.0.2');
const PEER_IP = parseIp('10.77.0.1');
const MiB = 1024 * 1024;

class Wire implements FramePort {
  sent: Uint8Array[] = [];
  private cb: (f: Uint8Array) => void = () => {};
  send(f: Uint8Array): void {
    this.sent.push(f);
  }
  onFrame(cb: (f: Uint8Array) => void): void {
    this.cb = cb;
  }
  inject(f: Uint8Array): void {
    this.cb(f);
  }
  close(): void {}
}

const machines: Machine[] = [];
afterEach(() => {
  for (const m of machines.splice(0)) m.release();
});

async function until<T>(what: string, f: () => T | null | undefined | false, ms = 3000): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function guest(personality: 'linux' | 'bsd', app: Record<string, unknown>): { m: Machine; wire: Wire; view(): NetView; base: number } {
  const m = new Machine('g', 32 * MiB);
  machines.push(m);
  const wire = new Wire();
  attachNic(m, { port: wire, autonegMs: 2 });
  m.onCrash = (e) => {
    throw e;
  };
  m.boot(16 * MiB, { modules: [{ name: 'nic', config: { personality, mac: GUEST_MAC } }, { name: 'netApp', config: { ip: '10.77.0.2', ...app } }] });
  const base = moduleBase(m.context(), MODULE_IDS.netApp);
  return { m, wire, base, view: () => parseNetRegion(m.context().mem.readBytes(base, 4096)) };
}

const arps = (w: Wire) => w.sent.map(parseArp).filter((a) => a !== null);
const garps = (w: Wire) => arps(w).filter((a) => a.op === ARP_REQUEST && a.senderIp === GUEST_IP && a.targetIp === GUEST_IP);

function datagram(seq: number, srcPort = 40000): Uint8Array {
  return buildUdp({ dstMac: GUEST_MAC, srcMac: PEER_MAC, src: PEER_IP, dst: GUEST_IP, srcPort, dstPort: 5001, id: seq & 0xffff }, 100, (f, off) => writeDatagram(f, off, seq, Date.now() * 1e6));
}

describe.each(['linux', 'bsd'] as const)('guest network stack over the %s driver', (personality) => {
  it('announces itself once the link is up, answers ARP and ping', async () => {
    const g = guest(personality, {});
    await until('gratuitous ARPs', () => garps(g.wire).length >= 3);
    expect(g.view().link).toBe(true);
    g.wire.inject(buildArp([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], PEER_MAC, { op: ARP_REQUEST, senderMac: PEER_MAC, senderIp: PEER_IP, targetMac: [0, 0, 0, 0, 0, 0], targetIp: GUEST_IP }));
    const reply = await until('ARP reply', () => arps(g.wire).find((a) => a.op === ARP_REPLY));
    expect(reply).toEqual({ op: ARP_REPLY, senderMac: GUEST_MAC, senderIp: GUEST_IP, targetMac: PEER_MAC, targetIp: PEER_IP });
    expect(g.view().arp).toEqual([{ ip: PEER_IP, mac: PEER_MAC }]);
    // An ARP request for someone else teaches nothing new.
    g.wire.inject(buildArp([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], [2, 0, 0, 0, 0, 7], { op: ARP_REQUEST, senderMac: [2, 0, 0, 0, 0, 7], senderIp: parseIp('10.77.0.7'), targetMac: [0, 0, 0, 0, 0, 0], targetIp: PEER_IP }));
    const data = Uint8Array.from({ length: 56 }, (_, i) => (i * 7) & 0xff);
    for (let seq = 1; seq <= 5; seq++) g.wire.inject(buildIcmpEcho({ dstMac: GUEST_MAC, srcMac: PEER_MAC, src: PEER_IP, dst: GUEST_IP, id: seq, type: ICMP_ECHO_REQUEST, ident: 77, seq }, data));
    const replies = await until('echo replies', () => {
      const r = g.wire.sent.map((f) => ({ f, ip: parseIpv4(f) })).filter((x) => x.ip?.protocol === 1).map((x) => ({ f: x.f, ip: x.ip!, icmp: parseIcmp(x.f, x.ip!) }));
      return r.length >= 5 ? r : null;
    });
    for (const [i, r] of replies.entries()) {
      expect(r.icmp).toMatchObject({ type: ICMP_ECHO_REPLY, ident: 77, seq: i + 1, dataLen: 56 });
      expect(r.ip).toMatchObject({ src: GUEST_IP, dst: PEER_IP });
      expect(Array.from(r.f.subarray(0, 6))).toEqual(PEER_MAC);
      expect(Array.from(r.f.subarray(r.icmp!.dataOff, r.icmp!.dataOff + 56))).toEqual(Array.from(data));
    }
    const v = g.view();
    expect(v.arp).toHaveLength(1);
    expect(v.counters.icmpEchoRx).toBe(5);
    expect(v.counters.icmpEchoRepliesTx).toBe(5);
    // A corrupted echo request is dropped, not answered.
    const bad = buildIcmpEcho({ dstMac: GUEST_MAC, srcMac: PEER_MAC, src: PEER_IP, dst: GUEST_IP, id: 9, type: ICMP_ECHO_REQUEST, ident: 77, seq: 9 }, data);
    bad[50] ^= 0xff;
    g.wire.inject(bad);
    await until('malformed count', () => g.view().counters.rxMalformed === 1);
    expect(g.view().counters.icmpEchoRepliesTx).toBe(5);
  });

  it('announces again on the doorbell and after a pause', async () => {
    const g = guest(personality, { announce: { count: 2, intervalMs: 5 } });
    await until('boot announcements', () => garps(g.wire).length >= 2);
    g.m.context().mem.write32(g.base + NET_ANNOUNCE_DOORBELL, 1);
    await until('doorbell announcements', () => garps(g.wire).length >= 4);
    expect(g.m.context().mem.read32(g.base + NET_ANNOUNCE_DOORBELL)).toBe(0);
    g.m.pause();
    await new Promise((r) => setTimeout(r, 40));
    g.m.resume();
    await until('post-pause announcements', () => garps(g.wire).length >= 6);
    expect(g.view().counters.pausesDetected).toBeGreaterThanOrEqual(1);
  });

  it('sink counts datagrams, gaps, duplicates and reordering, and answers a FIN like an iperf server', async () => {
    const g = guest(personality, { sink: { port: 5001 } });
    await until('link', () => g.view().link);
    for (const seq of [1, 2, 3, 5, 4, 4, 7]) g.wire.inject(datagram(seq));
    await until('sink', () => g.view().sink.received === 7);
    expect(g.view().sink).toMatchObject({ received: 7, unique: 6, first: 1, highest: 7, duplicates: 1, outOfOrder: 1, gaps: 2, missing: 1, bytes: 700 });
    g.wire.inject(datagram(-8));
    const rep = await until('report', () =>
      g.wire.sent
        .map((f) => ({ f, ip: parseIpv4(f) }))
        .filter((x) => x.ip?.protocol === 17)
        .map((x) => ({ f: x.f, u: parseUdp(x.f, x.ip!)! }))
        .find((x) => x.u.dstPort === 40000),
    );
    expect(rep.u.payloadLen).toBe(SERVER_REPORT_LEN);
    const dv = new DataView(rep.f.buffer, rep.f.byteOffset + rep.u.payloadOff);
    expect(dv.getUint32(16) & HEADER_VERSION1).not.toBe(0);
    expect({ bytes: dv.getUint32(24), lost: dv.getUint32(36), ooo: dv.getUint32(40), datagrams: dv.getUint32(44) }).toEqual({ bytes: 700, lost: 1, ooo: 1, datagrams: 8 });
    expect(g.view().sink.fins).toBe(1);
  });

  it('iperf sender: resolves the server, paces datagrams in iperf2 format, ends with a FIN and keeps the report', async () => {
    const g = guest(personality, { iperf: { dst: '10.77.0.1', rateBps: 800_000, length: 100, durationMs: 150 } });
    const req = await until('ARP request for the server', () => arps(g.wire).find((a) => a.op === ARP_REQUEST && a.targetIp === PEER_IP));
    expect(req.senderIp).toBe(GUEST_IP);
    g.wire.inject(buildArp(GUEST_MAC, PEER_MAC, { op: ARP_REPLY, senderMac: PEER_MAC, senderIp: PEER_IP, targetMac: GUEST_MAC, targetIp: GUEST_IP }));
    const udp = () =>
      g.wire.sent
        .map((f) => ({ f, ip: parseIpv4(f) }))
        .filter((x) => x.ip?.protocol === 17)
        .map((x) => ({ f: x.f, u: parseUdp(x.f, x.ip!)! }))
        .map((x) => ({ ...x.u, d: parseDatagram(x.f, x.u.payloadOff, x.u.payloadLen)!, dst: Array.from(x.f.subarray(0, 6)) }));
    const fin = await until('FIN', () => udp().find((x) => x.d.seq < 0), 5000);
    const data = udp().filter((x) => x.d.seq > 0);
    // 1000 datagrams/s for 150 ms (less the time to resolve the server's MAC).
    expect(data.length).toBeGreaterThan(40);
    expect(data.length).toBeLessThanOrEqual(151);
    data.forEach((x, i) => {
      expect(x.d.seq).toBe(i + 1);
      expect(x).toMatchObject({ srcPort: 5001, dstPort: 5001, payloadLen: 100, dst: PEER_MAC });
    });
    expect(fin.d.seq).toBe(-(data.length + 1));
    const report = new Uint8Array(SERVER_REPORT_LEN);
    writeServerReport(report, 0, { flags: 0x88000000, bytes: data.length * 100, durationUs: 150_000, lost: 0, outOfOrder: 0, datagrams: data.length + 1, jitterUs: 12 });
    g.wire.inject(buildUdp({ dstMac: GUEST_MAC, srcMac: PEER_MAC, src: PEER_IP, dst: GUEST_IP, srcPort: 5001, dstPort: 5001, id: 1 }, SERVER_REPORT_LEN, (f, off) => f.set(report, off)));
    await until('report stored', () => g.view().iperf.state === 'done');
    const v = g.view().iperf;
    expect(v.report).toEqual({ lost: 0, outOfOrder: 0, datagrams: data.length + 1, jitterUs: 12, bytes: data.length * 100, durationUs: 150_000 });
    expect(v.finTries).toBeLessThanOrEqual(FIN_TRIES);
    expect(v.sent).toBe(data.length);
  });
});
