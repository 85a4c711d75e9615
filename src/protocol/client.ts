import { WebSocket } from 'ws';
import { BaremigError, type BaremigErrorCode } from '../errors.js';
import { authMac, macEqual, newNonce } from './auth.js';
import { MAX_MESSAGE_BYTES, decode, encode } from './codec.js';
import { L2Transport, isL2Url } from './l2/transport.js';
import { PROTOCOL_VERSION, type RequestBody, type RequestType, type Responses } from './messages.js';

/**
 * One message-oriented connection to an agent: a WebSocket (simulator), or
 * an authenticated session on the raw migration link (`l2://…`, native agent).
 */
export interface AgentTransport {
  readonly open: boolean;
  send(bytes: Uint8Array | string, cb?: (err?: Error) => void): void;
  onMessage(fn: (data: Uint8Array) => void): void;
  onClose(fn: (reason: string) => void): void;
  close(): void;
}

class WsTransport implements AgentTransport {
  constructor(private readonly ws: WebSocket) {}
  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }
  send(bytes: Uint8Array | string, cb?: (err?: Error) => void): void {
    this.ws.send(bytes, cb);
  }
  onMessage(fn: (data: Uint8Array) => void): void {
    this.ws.on('message', (data: Buffer) => fn(data));
  }
  onClose(fn: (reason: string) => void): void {
    this.ws.on('close', (code, reason) => fn(reason.length ? reason.toString() : `code ${code}`));
    this.ws.on('error', (e) => fn(e.message));
  }
  close(): void {
    this.ws.close();
  }
}

export interface ClientOptions {
  /** Name the nodes file gives this node; the agent must answer with the same. */
  node: string;
  key: Uint8Array;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
}

const CODES = new Set<BaremigErrorCode>(['USAGE', 'INVENTORY', 'UNKNOWN_NODE', 'AGENT_UNREACHABLE', 'AUTH', 'PROTOCOL', 'VERSION', 'BAD_REQUEST', 'STATE', 'NOT_CONVERGING', 'STREAM', 'VERIFY', 'DEVICE', 'TIMEOUT', 'CANCELLED', 'UNCERTAIN', 'INTERNAL']);

/**
 * The coordinator's connection to one agent: authenticated both ways, one
 * request → one answer matched by id, every request with a timeout, and a
 * lost connection failing everything in flight with AGENT_UNREACHABLE.
 */
export class AgentClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; t: string }>();
  private closedError: BaremigError | null = null;

  private constructor(
    private readonly transport: AgentTransport,
    readonly node: string,
    readonly url: string,
    private readonly requestTimeoutMs: number,
  ) {
    transport.onMessage((data) => this.onMessage(data));
    transport.onClose((reason) => this.failAll(new BaremigError('AGENT_UNREACHABLE', `lost connection to agent ${node} at ${url}: ${reason}`)));
  }

  /** Opens the transport the address names (ws:// or wss://, or l2://) without the hello/auth exchange (tests of hostile input). */
  static async openTransport(url: string, opts: ClientOptions): Promise<AgentTransport> {
    const timeout = opts.connectTimeoutMs ?? 5000;
    if (isL2Url(url)) return L2Transport.connect(url, opts.key, timeout);
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: MAX_MESSAGE_BYTES, handshakeTimeout: timeout });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        ws.terminate();
        reject(new BaremigError('AGENT_UNREACHABLE', `agent ${opts.node} at ${url} did not answer within ${timeout} ms: is the node up and the address right?`));
      }, timeout);
      ws.once('open', () => {
        clearTimeout(t);
        resolve();
      });
      ws.once('error', (e) => {
        clearTimeout(t);
        reject(new BaremigError('AGENT_UNREACHABLE', `cannot reach agent ${opts.node} at ${url}: ${e.message}`));
      });
    });
    return new WsTransport(ws);
  }

  static async connect(url: string, opts: ClientOptions): Promise<AgentClient> {
    const transport = await AgentClient.openTransport(url, opts);
    const c = new AgentClient(transport, opts.node, url, opts.requestTimeoutMs ?? 60_000);
    try {
      const hello = await c.request('hello', { v: PROTOCOL_VERSION, role: 'coordinator' });
      if (hello.node !== opts.node) throw new BaremigError('INVENTORY', `the agent at ${url} is node '${hello.node}', the nodes file calls it '${opts.node}': fix the address`);
      const nonce = newNonce();
      const r = await c.request('auth', { nonce, mac: authMac(opts.key, 'client', hello.challenge, nonce, hello.node) });
      if (!macEqual(r.mac, authMac(opts.key, 'agent', hello.challenge, nonce, hello.node))) {
        throw new BaremigError('AUTH', `agent ${opts.node} at ${url} could not prove it holds the cluster key: not talking to it`);
      }
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  private failAll(e: BaremigError): void {
    if (!this.closedError) this.closedError = e;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
  }

  private onMessage(data: Uint8Array): void {
    let m: Record<string, unknown>;
    try {
      m = decode(data);
    } catch (e) {
      this.transport.close();
      this.failAll(new BaremigError('PROTOCOL', `agent ${this.node} sent an undecodable message: ${(e as Error).message}`));
      return;
    }
    const p = typeof m.id === 'number' ? this.pending.get(m.id) : undefined;
    if (!p) return; // an answer to a request that timed out
    this.pending.delete(m.id as number);
    clearTimeout(p.timer);
    if (m.t === 'ok') p.resolve(m);
    else {
      const code = CODES.has(m.code as BaremigErrorCode) ? (m.code as BaremigErrorCode) : 'PROTOCOL';
      p.reject(new BaremigError(code, `${this.node}: ${typeof m.message === 'string' ? m.message : 'error without a message'}`));
    }
  }

  request<T extends RequestType>(t: T, body: RequestBody<T>, timeoutMs = this.requestTimeoutMs): Promise<Responses[T]> {
    // Not sent at all: the agent cannot have acted on it (the engine relies on this).
    if (this.closedError) return Promise.reject(new BaremigError(this.closedError.code, this.closedError.message, { sent: false }));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new BaremigError('TIMEOUT', `agent ${this.node} did not answer '${t}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: Record<string, unknown>) => void, reject, timer, t });
      this.transport.send(encode({ t, id, ...body }), (err) => {
        if (err) {
          this.pending.delete(id);
          clearTimeout(timer);
          reject(new BaremigError('AGENT_UNREACHABLE', `cannot send to agent ${this.node}: ${err.message}`, { sent: false }));
        }
      });
    });
  }

  /** Send raw bytes (tests of hostile input). */
  sendRaw(bytes: Uint8Array | string): void {
    this.transport.send(bytes);
  }

  get closed(): boolean {
    return this.closedError !== null || !this.transport.open;
  }

  close(): void {
    this.transport.close();
  }
}
