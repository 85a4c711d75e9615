import { WebSocket } from 'ws';
import { BaremigError, type BaremigErrorCode } from '../errors.js';
import { authMac, macEqual, newNonce } from './auth.js';
import { MAX_MESSAGE_BYTES, decode, encode } from './codec.js';
import { PROTOCOL_VERSION, type RequestBody, type RequestType, type Responses } from './messages.js';

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
    private readonly ws: WebSocket,
    readonly node: string,
    readonly url: string,
    private readonly requestTimeoutMs: number,
  ) {
    ws.on('message', (data: Buffer) => this.onMessage(data));
    ws.on('close', (code, reason) => this.failAll(new BaremigError('AGENT_UNREACHABLE', `lost connection to agent ${node} at ${url}${reason.length ? `: ${reason.toString()}` : ` (code ${code})`}`)));
    ws.on('error', (e) => this.failAll(new BaremigError('AGENT_UNREACHABLE', `agent ${node} at ${url}: ${e.message}`)));
  }

  static async connect(url: string, opts: ClientOptions): Promise<AgentClient> {
    const timeout = opts.connectTimeoutMs ?? 5000;
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
    const c = new AgentClient(ws, opts.node, url, opts.requestTimeoutMs ?? 60_000);
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

  private onMessage(data: Buffer): void {
    let m: Record<string, unknown>;
    try {
      m = decode(data);
    } catch (e) {
      this.ws.terminate();
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
      this.ws.send(encode({ t, id, ...body }), (err) => {
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
    this.ws.send(bytes);
  }

  get closed(): boolean {
    return this.closedError !== null || this.ws.readyState !== WebSocket.OPEN;
  }

  close(): void {
    this.ws.close();
  }
}
