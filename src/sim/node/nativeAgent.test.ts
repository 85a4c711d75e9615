import { describe, expect, it } from 'vitest';
import { deviceFactories } from '../devices.js';
import { Machine } from '../machine.js';
import { hostedAddon, startNativeAgent } from './nativeAgent.js';

describe('native agent addon (hypervisor/hosted/napi_hal.c)', () => {
  it('is built with the package and exports the binding', () => {
    const a = hostedAddon();
    for (const f of ['start', 'portTrap', 'inta', 'resetShadows', 'stats', 'stop'] as const) expect(typeof a[f]).toBe('function');
    expect(a.stats().rxFrames).toBe(0);
  });

  it('a link it cannot open is a clear error, and nothing runs', () => {
    const m = new Machine('n1', 8 * 1024 * 1024, deviceFactories(['pic', 'pit']));
    const key = 'ab'.repeat(32);
    // as root: no such interface; otherwise: AF_PACKET needs CAP_NET_RAW
    expect(() => startNativeAgent(m, { name: 'n1', keyHex: key, ramCapacity: 8 * 1024 * 1024, link: { ifname: 'nosuch0' } })).toThrow(/interface nosuch0: No such device|needs CAP_NET_RAW/);
    expect(() => startNativeAgent(m, { name: 'n1', keyHex: key, ramCapacity: 8 * 1024 * 1024, link: { ifname: 'lo', netns: 'baremig-no-such-ns' } })).toThrow(/network namespace baremig-no-such-ns/);
    expect(() => startNativeAgent(m, { name: 'n1', keyHex: 'zz', ramCapacity: 8 * 1024 * 1024, link: { ifname: 'lo' } })).toThrow(/keyHex/);
  });
});
