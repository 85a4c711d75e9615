import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BaremigError, type BaremigErrorCode } from '../../errors.js';
import type { AgentTransport } from '../client.js';
import { MAX_MESSAGE_BYTES } from '../codec.js';

/**
 * The coordinator's transport on the dedicated migration link: raw Ethernet
 * frames (EtherType 0x88B5) with per-frame HMAC, sequence numbers, selective
 * acknowledgement and retransmission. The frame protocol lives in one place,
 * the C core in hypervisor/core/link.c; the coordinator runs it through
 * `baremig-l2-helper` (hypervisor/hosted/coord_helper.c), one helper process
 * per agent connection, started inside the coordinator's network namespace.
 * The helper speaks length-prefixed records on stdin/stdout:
 *
 *   record = u32 length (LE), u8 kind, payload
 *   to the helper:   1 cluster key (first), 2 one agent-protocol message
 *   from the helper: 0 session open, 1 one message, 2 failure "CODE message", 3 counters (JSON)
 *
 * Address: l2://IFACE/AGENT-MAC[?netns=NS][&loss=FRACTION]
 *   IFACE  the coordinator's interface on the migration link
 *   NS     network namespace to run the helper in (ip netns exec)
 *   loss   drop this fraction of frames in the helper (fault injection for tests)
 */
export interface L2Address {
  iface: string;
  peer: string;
  netns?: string;
  loss?: number;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const IFACE_RE = /^[A-Za-z0-9_.-]{1,15}$/;

export function isL2Url(url: string): boolean {
  return url.startsWith('l2://');
}

export function parseL2Url(url: string): L2Address {
  const m = /^l2:\/\/([^/?#]+)\/([^/?#]+)(?:\?([^#]*))?$/.exec(url);
  if (!m || !IFACE_RE.test(m[1]!) || !MAC_RE.test(m[2]!)) {
    throw new BaremigError('USAGE', `'${url}' is not an l2 address like l2://mig0/02:62:6d:00:00:01?netns=coord`);
  }
  const a: L2Address = { iface: m[1]!, peer: m[2]!.toLowerCase() };
  for (const [k, v] of new URLSearchParams(m[3] ?? '')) {
    if (k === 'netns' && /^[A-Za-z0-9_.-]{1,64}$/.test(v)) a.netns = v;
    else if (k === 'loss' && Number.isFinite(Number(v)) && Number(v) >= 0 && Number(v) < 1) a.loss = Number(v);
    else throw new BaremigError('USAGE', `l2 address ${url}: unknown or bad parameter ${k}`);
  }
  return a;
}

/** Where the helper binary is: $BAREMIG_L2_HELPER, else hypervisor/build/ of this checkout. */
export function helperPath(): string {
  const env = process.env.BAREMIG_L2_HELPER;
  if (env) return env;
  return fileURLToPath(new URL('../../../hypervisor/build/baremig-l2-helper', import.meta.url));
}

export interface L2Counters {
  rxFrames: number;
  txFrames: number;
  badMac: number;
  replay: number;
  unknownSession: number;
  retransmits: number;
  /** Retransmissions by cause: loss detection (RACK), tail loss probes, and RTO events. */
  rackLost: number;
  probes: number;
  timeouts: number;
  lossDropped: number;
}

const CODES = new Set<string>(['USAGE', 'AGENT_UNREACHABLE', 'AUTH', 'PROTOCOL', 'INTERNAL']);

export class L2Transport implements AgentTransport {
  private buf: Buffer = Buffer.alloc(0);
  private messageFn: (data: Uint8Array) => void = () => {};
  private closeFn: (reason: string) => void = () => {};
  private closed = false;
  private failure: BaremigError | null = null;
  /** The helper's link counters, once it has exited. */
  counters: L2Counters | null = null;
  readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly address: L2Address,
  ) {
    this.exited = new Promise((resolve) => child.once('close', () => resolve()));
  }

  static connect(url: string, key: Uint8Array, timeoutMs = 5000): Promise<L2Transport> {
    const a = parseL2Url(url);
    const helper = helperPath();
    if (!existsSync(helper)) {
      return Promise.reject(new BaremigError('AGENT_UNREACHABLE', `the l2 transport needs ${helper}: build it with 'make -C hypervisor'`));
    }
    const args = ['--if', a.iface, '--peer', a.peer, '--timeout-ms', String(timeoutMs)];
    if (a.loss) args.push('--loss', String(a.loss));
    const child = a.netns ? spawn('ip', ['netns', 'exec', a.netns, helper, ...args], { stdio: 'pipe' }) : spawn(helper, args, { stdio: 'pipe' });
    const t = new L2Transport(child, a);
    return new Promise((resolve, reject) => {
      let opened = false;
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-2000);
      });
      child.stdout.on('data', (d: Buffer) => t.onData(d, () => {
        opened = true;
        resolve(t);
      }));
      child.on('error', (e) => {
        if (!opened) reject(new BaremigError('AGENT_UNREACHABLE', `cannot start the l2 helper: ${e.message}`));
      });
      child.stdin.on('error', () => undefined);
      child.on('close', (code) => {
        const err = t.failure ?? new BaremigError('AGENT_UNREACHABLE', `l2 helper for ${a.peer} exited (${code ?? 'signal'})${stderr ? `: ${stderr.trim()}` : ''}`);
        if (!opened) reject(err);
        t.finish(err.message);
      });
      const k = Buffer.alloc(5 + key.length);
      k.writeUInt32LE(key.length, 0);
      k[4] = 1;
      k.set(key, 5);
      child.stdin.write(k);
    });
  }

  private onData(d: Buffer, onOpen: () => void): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    while (this.buf.length >= 5) {
      const n = this.buf.readUInt32LE(0);
      if (n > MAX_MESSAGE_BYTES + 16) {
        this.failure = new BaremigError('PROTOCOL', 'l2 helper sent an oversized record');
        this.child.kill('SIGKILL');
        return;
      }
      if (this.buf.length < 5 + n) return;
      const kind = this.buf[4];
      const payload = this.buf.subarray(5, 5 + n);
      this.buf = this.buf.subarray(5 + n);
      if (kind === 0) onOpen();
      else if (kind === 1) {
        if (process.env.BAREMIG_L2_DEBUG) console.error(`l2 ${this.address.peer} <- ${payload.length} bytes ${payload.subarray(0, 64).toString('hex')}`);
        this.messageFn(payload);
      }
      else if (kind === 2) {
        const s = payload.toString('utf8');
        const sp = s.indexOf(' ');
        const code = sp > 0 ? s.slice(0, sp) : 'AGENT_UNREACHABLE';
        this.failure = new BaremigError((CODES.has(code) ? code : 'AGENT_UNREACHABLE') as BaremigErrorCode, `agent at l2://${this.address.iface}/${this.address.peer}: ${sp > 0 ? s.slice(sp + 1) : s}`);
      } else if (kind === 3) {
        try {
          this.counters = JSON.parse(payload.toString('utf8')) as L2Counters;
        } catch {
          /* counters are informational */
        }
      }
    }
  }

  private finish(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeFn(reason);
  }

  get open(): boolean {
    return !this.closed;
  }

  send(data: Uint8Array | string, cb?: (err?: Error) => void): void {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (this.closed) {
      cb?.(new Error('l2 session closed'));
      return;
    }
    const h = Buffer.alloc(5);
    h.writeUInt32LE(bytes.length, 0);
    h[4] = 2;
    this.child.stdin.write(h);
    this.child.stdin.write(bytes, (e) => cb?.(e ?? undefined));
  }

  onMessage(fn: (data: Uint8Array) => void): void {
    this.messageFn = fn;
  }

  onClose(fn: (reason: string) => void): void {
    this.closeFn = fn;
  }

  /** Closes the session (the helper sends FIN and exits). */
  close(): void {
    if (!this.child.stdin.destroyed) this.child.stdin.end();
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    killer.unref();
    void this.exited.then(() => clearTimeout(killer));
  }
}
