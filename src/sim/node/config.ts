import type { GuestSpec } from '../guest/os.js';

/** How one simulated node process is started. */
export interface SimNodeConfig {
  name: string;
  host: string;
  /** Agent WebSocket port; 0 picks a free one. */
  port: number;
  ramCapacity: number;
  keyHex: string;
  /** Device kinds the node has: 'pit', 'pic', 'rtl8169'. */
  devices: string[];
  /**
   * The node's RTL8169 plugged into a service-network switch port (implies
   * the 'rtl8169' device; see src/sim/network/nicPort.ts).
   */
  network?: {
    /** UDP endpoint of the switch port for this node. */
    switch: { host: string; port: number };
    /** EEPROM MAC; default derived from the node name. */
    mac?: string;
    mmioBase?: number;
    irq?: number;
    /** PHY autonegotiation time (default 1500 ms, as real chips). */
    autonegMs?: number;
  };
  /**
   * Which agent serves the node: 'ts' (default), the simulator's TypeScript
   * agent over WebSocket on host:port; or 'native', the hypervisor's C agent
   * core loaded as a Node-API addon (src/sim/node/nativeAgent.ts), speaking
   * the protocol over raw Ethernet frames on `link` (needs root: AF_PACKET).
   */
  agent?: 'ts' | 'native';
  /** The native agent's migration link: interface, its network namespace, fault injection. */
  link?: {
    /** Interface name (e.g. 'mig0'). */
    ifname: string;
    /** Network namespace of the interface (`ip netns` name); default: the node's own. */
    netns?: string;
    /** Fraction of received link frames dropped (fault injection). */
    loss?: number;
  };
  /** Boot a guest at start-up. */
  boot?: { ramBytes: number; spec: GuestSpec };
}

export const READY_PREFIX = 'BAREMIG-NODE-READY ';
