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
  /** Boot a guest at start-up. */
  boot?: { ramBytes: number; spec: GuestSpec };
}

export const READY_PREFIX = 'BAREMIG-NODE-READY ';
