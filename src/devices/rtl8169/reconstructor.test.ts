import { describe, expect, it } from 'vitest';
import type { DeviceAccess } from '../io.js';
import { BaremigError } from '../../errors.js';
import { createRtl8169Reconstructor } from './reconstructor.js';
import { GUEST_MAC, NIC_MMIO, PEER_MAC, makeNicNode, taggedFrame } from './testbed.js';
import { Desc, Intr, Reg, TxPoll } from './registers.js';
import { DUMMY_X, DUMMY_X1, DUMMY_Y, dummyImage, planScratch, ringLenFromEor, rxFromMemory, txGuess } from './reconstructor.js';
import { type Personality, type Scenario, World, comparable } from './scenario.js';

function ring(opts1: number[]): Uint8Array {
  const b = new Uint8Array(opts1.length * Desc.BYTES);
  const v = new DataView(b.buffer);
  opts1.forEach((o, i) => v.setUint32(i * Desc.BYTES, o >>> 0, true));
  return b;
}
const O = Desc.OWN;

describe('derivation helpers', () => {
  it('ring length exists only as EOR', () => {
    expect(ringLenFromEor(ring([0, 0, Desc.EOR, 0]))).toBe(3);
    expect(ringLenFromEor(ring([0, 0, 0]))).toBeNull();
  });

  it('TX guess: start of the owned run, else after the consumed-unreaped run, else 0', () => {
    expect(txGuess(ring([0, O, O, 0, 0]), 5)).toBe(1);
    expect(txGuess(ring([O, 0, 0, O, O]), 5)).toBe(3); // run wraps: starts at 3
    const done = Desc.FS | Desc.LS | 60;
    expect(txGuess(ring([0, done, done, 0, 0]), 5)).toBe(3);
    expect(txGuess(ring([0, 0, 0, 0]), 4)).toBe(0);
  });

  it('RX from memory only with exactly one 0 -> 1 transition', () => {
    const f = Desc.FS | Desc.LS | 64;
    expect(rxFromMemory(ring([f, f, O, O]), 4)).toBe(2);
    expect(rxFromMemory(ring([O, f, O, O]), 4)).toBe(2);
    expect(rxFromMemory(ring([O, O, O, O]), 4)).toBeNull(); // idle: ambiguous
    expect(rxFromMemory(ring([f, f, f, f]), 4)).toBeNull(); // full: ambiguous
    expect(rxFromMemory(ring([f, O, f, O]), 4)).toBeNull(); // two runs
  });

  it('dummy frames: X broadcast, X1 one byte longer, Y unicast to nobody (never the guest MAC)', () => {
    for (const idr of [[0x52, 0x54, 0, 1, 2, 3], [0x02, 0x62, 0x6d, 0x69, 0x67, 0x00]]) {
      const img = dummyImage(idr);
      const x = img.subarray(DUMMY_X.off, DUMMY_X.off + DUMMY_X.len);
      const y = img.subarray(DUMMY_Y.off, DUMMY_Y.off + DUMMY_Y.len);
      expect(Array.from(x.subarray(0, 6))).toEqual([255, 255, 255, 255, 255, 255]);
      expect(DUMMY_X1.len).toBe(DUMMY_X.len + 1);
      expect(y.length).toBe(60);
      expect(y[0]! & 1).toBe(0);
      expect(Array.from(y.subarray(0, 6))).not.toEqual(idr);
    }
  });

  it('scratch plan: one big buffer, or several small ones; never in a ring window; tally only when aligned room exists', () => {
    const big = planScratch([{ addr: 0x10000, size: 2048 }], []);
    expect(big!.spans).toHaveLength(1);
    expect(big!.layout.tally! % 64).toBe(0);
    const small = planScratch(
      [
        { addr: 0x20000, size: 68 },
        { addr: 0x21000, size: 70 },
      ],
      [],
    );
    expect(small!.spans).toHaveLength(2);
    expect(small!.layout.tally).toBeNull();
    expect(planScratch([{ addr: 0x20000, size: 68 }], [])).toBeNull();
    expect(planScratch([{ addr: 0x1000, size: 4096 }], [[0x1000, 0x2000]])).toBeNull();
  });
});

async function migrateAndCheck(sc: Scenario, rollbackCheck = false) {
  const w = new World(sc);
  w.warmUp();
  for (const op of sc.ops) w.apply(op);
  const m = await w.migrate({ rollbackCheck });
  expect(m.srcRamAfterCapture.equals(m.ramAtPause)).toBe(true);
  expect(m.dstRamAfterRestore.equals(m.ramAtPause)).toBe(true);
  expect(comparable(m.after, m.report)).toEqual(comparable(m.before, m.report));
  expect(m.report.extra!['phyarNotRecreated'] ?? 0).toBe(0);
  if (rollbackCheck) expect(comparable(m.afterRollback!)).toEqual(comparable(m.before));
  // The destination announced the guest's MAC once, before any frame of the guest; the source never.
  const ann = w.announcements();
  expect(ann[0]).toEqual([]);
  expect(m.report.extra!['announced']).toBe(1);
  expect(ann[1]).toEqual([{ at: 0, mac: GUEST_MAC }]);
  w.continueAfter();
  const wire = w.wireFrames();
  expect(wire).toEqual(w.sent.map((seq) => ({ tag: 'GST', seq })));
  const rx = w.receivedFrames();
  expect(rx.every((f) => f?.tag === 'PEER')).toBe(true);
  const seqs = rx.map((f) => f!.seq);
  for (let i = 1; i < seqs.length; i++) expect(seqs[i]!).toBeGreaterThan(seqs[i - 1]!);
  expect(w.peerSent.length - seqs.length).toBe(w.node.nic.inspect().rxMissed);
  return { w, m };
}

describe.each(['linux', 'bsd'] as Personality[])('capture → restore (%s)', (personality) => {
  it('idle rings after several laps (the ambiguous case: TX probe and RX lap)', async () => {
    const { m } = await migrateAndCheck({ personality, nTx: 16, nRx: 16, warmTx: 37, warmRx: 41, ops: [] });
    expect(m.before.txIndex).toBe(37 % 16);
    expect(m.before.rxIndex).toBe(41 % 16);
    expect(m.state.rx.method).toBe('lap');
    expect(m.report.extra!['dummyFrames']).toBeGreaterThan(0);
    expect(m.report.programs).toBe(2);
  });

  it('pending TX not kicked, RX frames unprocessed, interrupt pending and unmasked', async () => {
    const { m } = await migrateAndCheck({
      personality,
      nTx: 10,
      nRx: 12,
      warmTx: 23,
      warmRx: 29,
      ops: [
        { k: 'send', n: 3, more: true, len: 80 },
        { k: 'peer', n: 4, bcast: false },
      ],
    });
    expect(m.before.regs.intrStatus & Intr.RxOK).toBe(Intr.RxOK);
    expect(m.before.irqLevel).toBe(true);
    expect(m.state.rx.method).toBe('memory');
  });

  it('full RX ring with missed frames (RxDescUnavail, RxMissed), masked in the middle of interrupt handling', async () => {
    const { m } = await migrateAndCheck({
      personality,
      nTx: 7,
      nRx: 9,
      warmTx: 5,
      warmRx: 20,
      ops: [
        { k: 'peer', n: 13, bcast: true },
        { k: 'irq' },
        { k: 'swint' },
      ],
    });
    expect(m.before.rxMissed).toBe(4);
    expect(m.before.regs.intrMask).toBe(0);
    expect(m.before.regs.intrStatus & (Intr.RxDescUnavail | Intr.SWInt)).not.toBe(0);
  });

  it('rollback after capture leaves the source exactly as at pause', async () => {
    await migrateAndCheck({ personality, nTx: 11, nRx: 6, warmTx: 30, warmRx: 8, ops: [{ k: 'send', n: 2, more: true, len: 70 }] }, true);
  });
});

describe('specific cases', () => {
  it('Linux TX ring whose EOR was erased by reaping: probe geometry from the window, index still exact', async () => {
    const { m } = await migrateAndCheck({ personality: 'linux', nTx: 8, nRx: 8, warmTx: 8 * 3 + 5, warmRx: 3, ops: [] });
    expect(m.state.tx.ringLen).toBeNull();
    expect(m.state.tx.index).toBe(5);
  });

  it('FreeBSD TX timer pending (TimeOut) across the migration', async () => {
    const { m } = await migrateAndCheck({
      personality: 'bsd',
      nTx: 8,
      nRx: 8,
      warmTx: 3,
      warmRx: 3,
      ops: [{ k: 'send', n: 2, more: false, len: 60 }, { k: 'time', us: 100 }],
    });
    expect(m.before.regs.intrStatus & Intr.TimeOut).toBe(Intr.TimeOut);
  });

  it('no dummy frame reaches the wire or the guest even with large rings', async () => {
    const { w, m } = await migrateAndCheck({ personality: 'linux', nTx: 64, nRx: 256, warmTx: 100, warmRx: 300, ops: [] });
    expect(m.report.extra!['dummyFrames']).toBeGreaterThan(0);
    expect(w.wireFrames().every((f) => f?.tag === 'GST')).toBe(true);
  });
});

describe('more cases', () => {
  it('the high-priority queue keeps its own hidden index, derived and recreated like the normal one', async () => {
    const w = new World({ personality: 'linux', nTx: 8, nRx: 8, warmTx: 3, warmRx: 3, ops: [] });
    w.warmUp();
    const HPQ_RING = 0x80000;
    const HPQ_BUF = 0x90000;
    const N = 6;
    let prod = 0;
    const post = (seq: number, kick: boolean) => {
      const f = taggedFrame(PEER_MAC, GUEST_MAC, 'HPQ', seq, 70);
      w.node.mem.writeBytes(HPQ_BUF + prod * 2048, f);
      const at = HPQ_RING + prod * 16;
      w.node.mem.write32(at + 8, HPQ_BUF + prod * 2048);
      w.node.mem.write32(at, (Desc.OWN | Desc.FS | Desc.LS | f.length | (prod === N - 1 ? Desc.EOR : 0)) >>> 0);
      prod = (prod + 1) % N;
      if (kick) w.node.ctx.io.mmioWrite(NIC_MMIO + Reg.TXPOLL, 1, TxPoll.HPQ);
    };
    w.node.mem.fill(HPQ_RING, N * 16, 0);
    w.node.ctx.io.mmioWrite(NIC_MMIO + Reg.THPDS_HI, 4, 0);
    w.node.ctx.io.mmioWrite(NIC_MMIO + Reg.THPDS_LO, 4, HPQ_RING);
    for (let seq = 0; seq < 9; seq++) post(seq, true);
    post(9, false); // posted, not kicked
    const m = await w.migrate();
    expect(m.before.hpqIndex).toBe(3);
    expect(m.state.hpq.index).toBe(3);
    expect(m.after.hpqIndex).toBe(3);
    expect(comparable(m.after, m.report)).toEqual(comparable(m.before, m.report));
    post(10, true);
    const hpq = w.wireFrames().filter((f) => f?.tag === 'HPQ').map((f) => f!.seq);
    expect(hpq).toEqual(Array.from({ length: 11 }, (_, i) => i));
  });

  it('a capture that fails midway (after the probe moved the TX index and, in the same program, back) leaves the source as it was', async () => {
    const w = new World({ personality: 'bsd', nTx: 16, nRx: 16, warmTx: 37, warmRx: 41, ops: [] });
    w.warmUp();
    const before = w.node.nic.inspect();
    const ram = Buffer.from(w.node.mem.bytes);
    const acc = w.node.access();
    let kickPrograms = 0;
    const flaky: DeviceAccess = {
      shadow: () => acc.shadow(),
      run: async (prog) => {
        if (prog.some((o) => o.op === 'mmioWrite' && o.addr === NIC_MMIO + Reg.TXPOLL) && ++kickPrograms === 2) {
          throw new BaremigError('AGENT_UNREACHABLE', 'link to the agent lost');
        }
        return acc.run(prog);
      },
    };
    const rec = createRtl8169Reconstructor({ mmioBase: NIC_MMIO, device: 'nic0' });
    await expect(rec.capture(flaky)).rejects.toThrow(/link to the agent lost/);
    expect(kickPrograms).toBe(2); // probe (TX index moved and returned), (failed) RX lap; the repair kicks nothing
    expect(comparable(w.node.nic.inspect())).toEqual(comparable(before));
    expect(Buffer.from(w.node.mem.bytes).equals(ram)).toBe(true);
  });

  it('the report carries dummyFrames, advances, and the offsets of what cannot be preset', async () => {
    const { m } = await migrateAndCheck({ personality: 'linux', nTx: 16, nRx: 32, warmTx: 21, warmRx: 45, ops: [{ k: 'peer', n: 40, bcast: false }] });
    const x = m.report.extra!;
    expect(x['dummyFrames']).toBeGreaterThanOrEqual(5 + 13);
    expect([x['txAdvance'], x['rxAdvance']]).toEqual([m.before.txIndex, m.before.rxIndex]);
    expect(x['rxMissedGenerated']).toBe(m.before.rxMissed);
    expect(x['rxMissedOffset']).toBe(0);
    expect(x['tctrOffset']).toBeGreaterThan(0);
    expect(x['tallyOffset.txOk']).toBeGreaterThan(0);
    expect(x['lostIntrBits']).toBe(0);
    expect(x['intrStatusMismatch']).toBe(0);
    expect(x['phyRenegotiated']).toBe(0);
  });

  it('a destination whose link partner is different renegotiates, so the guest gets LinkChg', async () => {
    const w = new World({ personality: 'bsd', nTx: 8, nRx: 8, warmTx: 3, warmRx: 3, ops: [] });
    w.warmUp();
    const src = w.node;
    const rec = createRtl8169Reconstructor({ mmioBase: NIC_MMIO, device: 'nic0' });
    const state = await rec.capture(src.access());
    const dst = makeNicNode({ partner: { anlpar: 0x41e1, gbsr: 0 }, ramBytes: src.mem.size });
    dst.clock.advance(1_000_000);
    dst.nic.advanceTo(dst.clock.nowNs());
    dst.mem.bytes.set(src.mem.bytes);
    const report = await rec.restore(dst.access(), state);
    expect(report.extra!['phyRenegotiated']).toBe(1);
    dst.clock.advance(1_000_000);
    const s = dst.nic.inspect();
    expect(s.regs.phyStatus & 0x18).toBe(0x08); // 100 Mb/s with this partner
    expect(s.regs.intrStatus & Intr.LinkChg).toBe(Intr.LinkChg);
  });
});
