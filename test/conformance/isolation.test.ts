/**
 * Isolation, the simulator's side: the guest has root on its node and may be
 * hostile. Everything it can touch is its GuestContext (RAM, port/MMIO
 * access through the device bus, its clock). A guest that scans every port
 * and probes the MMIO space finds only the devices the node gives it, no
 * migration NIC; and a frame it sends out of its own NIC never reaches an
 * agent (the native agent's link answers only authenticated frames; that
 * side is covered by hypervisor/test/test_link.c and the conformance suite).
 */
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/sim/machine.js';
import { deviceFactories, knownDeviceKinds } from '../../src/sim/devices.js';
import { workloadSpec } from '../helpers.js';

describe('the guest finds no migration NIC', () => {
  it('a port scan and an MMIO probe reach only the guest devices', () => {
    const m = new Machine('iso', 64 << 20, deviceFactories(knownDeviceKinds()));
    m.boot(16 << 20, workloadSpec({ workingSetBytes: 1 << 20, dirtyRate: 0 }));
    const ctx = m.context();
    // all a guest holds: RAM, the bus, its clock
    expect(Object.keys(ctx).sort()).toEqual(['io', 'mem', 'nowNs']);
    const names = new Set(m.devices.map((d) => d.name));
    for (const d of m.bus.devices()) expect(names.has(d.name) || m.devices.some((x) => d.name.startsWith(x.name)), `bus device ${d.name}`).toBe(true);
    expect(m.bus.devices().some((d) => /migr|link|agent|pro1000|e1000/i.test(d.name))).toBe(false);
    // every port that answers belongs to a listed device
    const claimed = new Set<number>();
    for (const d of m.bus.devices()) for (const [a, b] of d.ports ?? []) for (let p = a; p <= b; p++) claimed.add(p);
    let answering = 0;
    for (let port = 0; port <= 0xffff; port++) {
      if (claimed.has(port)) continue;
      const v = ctx.io.in(port, 1);
      expect(v, `port 0x${port.toString(16)}`).toBe(0xff);
      ctx.io.out(port, 1, 0x5a); // writes to unclaimed ports go nowhere
      answering += v === 0xff ? 0 : 1;
    }
    expect(answering).toBe(0);
    // MMIO: outside the listed windows, all-ones at every 1 MiB step of the 32-bit space
    const windows = m.bus.devices().flatMap((d) => (d.mmio ? [d.mmio] : []));
    for (let a = 0; a < 2 ** 32; a += 0x100000) {
      if (windows.some((w) => a >= w.base && a < w.base + w.size)) continue;
      expect(ctx.io.mmioRead(a, 4)).toBe(0xffffffff);
    }
  });
});
