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
  /** Boot a guest at start-up. */
  boot?: { ramBytes: number; spec: GuestSpec };
}

export const READY_PREFIX = 'BAREMIG-NODE-READY ';
