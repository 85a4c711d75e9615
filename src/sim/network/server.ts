/**
 * The service network as one object: an L2 switch, a UDP port per node, and
 * bridges to host interfaces. Runs inside a test, inside the cluster's
 * parent, or as its own process (main.ts).
 */
import { HostBridge } from './bridge.js';
import { type SwitchOptions, L2Switch } from './switch.js';
import { type UdpEndpoint, UdpSwitchPort } from './udp.js';

export interface ServiceNetworkConfig {
  /** Address the UDP ports bind to (default 127.0.0.1). */
  host?: string;
  /** Node ports to open, by name (one per node NIC). */
  ports?: string[];
  /** Host interfaces to bridge in (needs root and the 'pcap' package). */
  bridges?: string[];
  agingMs?: number;
  maxEntries?: number;
  onMove?: SwitchOptions['onMove'];
}

export class ServiceNetwork {
  readonly sw: L2Switch;
  private readonly udp = new Map<string, UdpSwitchPort>();
  private readonly bridges = new Map<string, HostBridge>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly host: string;

  private constructor(cfg: ServiceNetworkConfig) {
    this.host = cfg.host ?? '127.0.0.1';
    this.sw = new L2Switch({ agingMs: cfg.agingMs, maxEntries: cfg.maxEntries, onMove: cfg.onMove });
    this.sweeper = setInterval(() => this.sw.sweep(), Math.min(60_000, Math.max(1000, (cfg.agingMs ?? 300_000) / 2)));
    this.sweeper.unref();
  }

  static async start(cfg: ServiceNetworkConfig = {}): Promise<ServiceNetwork> {
    const n = new ServiceNetwork(cfg);
    try {
      for (const p of cfg.ports ?? []) await n.addPort(p);
      for (const b of cfg.bridges ?? []) n.addBridge(b);
    } catch (e) {
      n.close();
      throw e;
    }
    return n;
  }

  /** Opens a UDP port for a node's NIC; its endpoint goes into that node's config. */
  async addPort(name: string): Promise<UdpEndpoint> {
    if (this.udp.has(name) || this.bridges.has(name)) throw new Error(`switch port ${name} exists`);
    const p = await UdpSwitchPort.open(this.sw, name, this.host);
    this.udp.set(name, p);
    return p.endpoint;
  }

  addBridge(iface: string): HostBridge {
    const name = `host:${iface}`;
    if (this.bridges.has(name)) throw new Error(`switch port ${name} exists`);
    const b = HostBridge.open(this.sw, iface, name);
    this.bridges.set(name, b);
    return b;
  }

  endpoint(name: string): UdpEndpoint {
    const p = this.udp.get(name);
    if (!p) throw new Error(`no switch port ${name}`);
    return p.endpoint;
  }

  endpoints(): Record<string, UdpEndpoint> {
    return Object.fromEntries([...this.udp].map(([k, p]) => [k, p.endpoint]));
  }

  bridge(iface: string): HostBridge | undefined {
    return this.bridges.get(`host:${iface}`);
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const p of this.udp.values()) p.close(this.sw);
    for (const b of this.bridges.values()) b.close(this.sw);
    this.udp.clear();
    this.bridges.clear();
  }
}
