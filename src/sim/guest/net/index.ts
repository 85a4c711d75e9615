/**
 * The guest's networking: the 'nic' module (an RTL8169 driver personality)
 * and the 'netApp' module (stack and applications), wired to each other.
 * A node that has an RTL8169 registers both with its GuestOs
 * (registerGuestNet); a guest spec then enables them, e.g.
 *
 *   { name: 'nic', config: { personality: 'linux', mac: '52:54:00:12:34:56' } },
 *   { name: 'netApp', config: { ip: '10.77.0.2', iperf: { dst: '10.77.0.1', rateBps: 8e6 }, sink: { port: 5001 } } },
 *
 * 'nic' must come before 'netApp' in the spec (the stack finds the NIC's
 * region at boot).
 */
import type { GuestModule } from '../context.js';
import type { GuestOs } from '../os.js';
import { createNicModule } from './nic.js';
import { createNetStack } from './stack.js';

export { DEFAULT_NIC_MMIO, type NicModuleConfig, type NicPersonality, moduleBase } from './nic.js';
export { type NetAppConfig, type NetView, parseNetRegion, NET_REGION_BYTES, NET_ANNOUNCE_DOORBELL, COUNTER_NAMES } from './stack.js';

// Guest code holds no state: one instance of each module serves every guest.
const stackRef: { receive: ReturnType<typeof createNetStack>['receive'] | null } = { receive: null };
const nic = createNicModule((ctx, stackBase, frame) => stackRef.receive?.(ctx, stackBase, frame));
const stack = createNetStack(nic.api);
stackRef.receive = stack.receive;

export const nicModule = nic.module;
export const netStackModule = stack as GuestModule<unknown>;
export const nicDrivers = nic.drivers;

export function registerGuestNet(os: GuestOs): void {
  os.register('nic', nic.module as GuestModule<unknown>);
  os.register('netApp', stack as GuestModule<unknown>);
}
