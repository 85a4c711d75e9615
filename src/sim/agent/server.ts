import { randomBytes } from 'node:crypto';
import { type AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { BaremigError, asBaremigError } from '../../errors.js';
import { authMac, macEqual, newNonce } from '../../protocol/auth.js';
import { MAX_MESSAGE_BYTES, decode, encode } from '../../protocol/codec.js';
import { PROTOCOL_VERSION, type Request, type Responses, requestSchema } from '../../protocol/messages.js';
import { PageSender } from '../../protocol/pageSender.js';
import type { IoTarget } from '../ioProgram.js';
import { runIoProgram } from '../ioProgram.js';
import type { ModuleName } from '../guest/layout.js';
import { MODULE_IDS } from '../guest/layout.js';
import { type Machine, wallMs } from '../machine.js';
import { checkVcpuState } from '../vcpu.js';
import { PageReceiver } from './pageReceiver.js';
import { simAccel } from '../native.js';

interface Session {
  ws: WebSocket;
  challenge: Buffer | null;
  authed: boolean;
  /** This session prepared the incoming guest: if it goes away first, the partial guest is dropped. */
  ownsIncoming: boolean;
}

export interface AgentOptions {
  host: string;
  port: number;
  key: Buffer;
}

/**
 * The simulator's agent: the agent protocol over WebSocket in front of a
 * Machine. Every request is validated field by field before anything
 * happens; a request that fails validation, authentication or a state check
 * is answered with an error and changes nothing.
 */
export class SimAgent {
  private wss: WebSocketServer | null = null;
  private readonly receiver: PageReceiver;
  private readonly senders = new Map<string, PageSender>();
  /** Pages synced from the dirty log and not yet streamed (a sync adds to it, a dirty round empties it). */
  private pending: Uint8Array | null = null;
  private dirtyLogOn = false;
  private lastSyncMs = 0;
  private incomingToken: Buffer | null = null;
  port = 0;
  dataPort = 0;
  /** Requests refused for protocol, auth or validation reasons (for tests and operators). */
  refused = 0;

  constructor(
    readonly machine: Machine,
    private readonly opts: AgentOptions,
  ) {
    this.receiver = new PageReceiver(opts.host);
  }

  async start(): Promise<void> {
    this.dataPort = await this.receiver.listen(0);
    const wss = new WebSocketServer({ host: this.opts.host, port: this.opts.port, perMessageDeflate: false, maxPayload: MAX_MESSAGE_BYTES });
    this.wss = wss;
    await new Promise<void>((resolve, reject) => {
      wss.once('error', reject);
      wss.once('listening', () => resolve());
    });
    this.port = (wss.address() as AddressInfo).port;
    wss.on('connection', (ws) => this.onConnection(ws));
  }

  async stop(): Promise<void> {
    for (const s of this.senders.values()) s.close();
    this.senders.clear();
    await this.receiver.close();
    const wss = this.wss;
    this.wss = null;
    if (wss) {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    }
  }

  private onConnection(ws: WebSocket): void {
    const session: Session = { ws, challenge: null, authed: false, ownsIncoming: false };
    ws.on('message', (data, isBinary) => {
      void this.onMessage(session, data as Buffer, isBinary);
    });
    ws.on('close', () => this.onClose(session));
    ws.on('error', () => ws.terminate());
  }

  private onClose(s: Session): void {
    if (s.ownsIncoming && this.machine.state === 'incoming') {
      // The coordinator that started this incoming migration is gone before
      // the guest ran here: the partial copy is worthless, free it.
      this.receiver.closeSlot();
      this.incomingToken = null;
      this.machine.release();
    }
  }

  private reply(s: Session, msg: Record<string, unknown>): void {
    if (s.ws.readyState === s.ws.OPEN) s.ws.send(encode(msg));
  }

  private async onMessage(s: Session, data: Buffer, isBinary: boolean): Promise<void> {
    let id = 0;
    try {
      if (!isBinary) throw new BaremigError('PROTOCOL', 'text frames are not part of the agent protocol; send msgpack in binary frames');
      const raw = decode(data);
      if (typeof raw.id === 'number' && Number.isInteger(raw.id) && raw.id >= 0 && raw.id <= 0xffffffff) id = raw.id;
      const parsed = requestSchema.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const where = issue?.path.length ? issue.path.join('.') : 't';
        throw new BaremigError('PROTOCOL', `invalid ${typeof raw.t === 'string' ? `'${raw.t.slice(0, 32)}'` : ''} request: ${where}: ${issue?.message ?? 'malformed'}`);
      }
      const req = parsed.data;
      const body = await this.handle(s, req);
      this.reply(s, { t: 'ok', id, ...body });
    } catch (e) {
      const err = asBaremigError(e);
      if (err.code === 'PROTOCOL' || err.code === 'AUTH' || err.code === 'VERSION') this.refused++;
      this.reply(s, { t: 'err', id, code: err.code, message: err.message });
      if (err.code === 'AUTH' && s.challenge === null && !s.authed) s.ws.close(4001, 'authentication failed');
    }
  }

  private requireState(...states: Array<typeof this.machine.state>): void {
    if (!states.includes(this.machine.state)) {
      throw new BaremigError('STATE', `node ${this.machine.name}: guest is ${this.machine.state}, this needs ${states.join(' or ')}`);
    }
  }

  private mem() {
    const m = this.machine.mem;
    if (!m) throw new BaremigError('STATE', `node ${this.machine.name} has no guest`);
    return m;
  }

  private ioTarget(): IoTarget {
    const machine = this.machine;
    return {
      bus: machine.bus,
      mem: this.mem(),
      advance: () => {
        const now = machine.clock.nowNs();
        for (const d of machine.devices) d.timed?.advanceTo(now);
      },
      delay: (us) => new Promise((r) => (us < 1000 ? setImmediate(r) : setTimeout(r, Math.round(us / 1000)))),
      nowUs: () => machine.clock.nowNs() / 1000,
      injectFrame: (device, frame) => {
        const d = machine.devices.find((x) => x.name === device);
        if (!d?.receiveFrame) throw new BaremigError('BAD_REQUEST', `node ${machine.name} has no NIC named ${device}`);
        d.receiveFrame(frame);
      },
    };
  }

  private async handle(s: Session, req: Request): Promise<Record<string, unknown>> {
    const m = this.machine;
    if (req.t === 'hello') {
      if (req.v !== PROTOCOL_VERSION) throw new BaremigError('VERSION', `agent ${m.name} speaks protocol v${PROTOCOL_VERSION}, the coordinator v${req.v}: upgrade one of them`);
      s.challenge = newNonce();
      s.authed = false;
      return { node: m.name, v: PROTOCOL_VERSION, challenge: s.challenge } satisfies Responses['hello'];
    }
    if (req.t === 'auth') {
      if (!s.challenge) throw new BaremigError('AUTH', 'send hello before auth');
      const expect = authMac(this.opts.key, 'client', s.challenge, req.nonce, m.name);
      const challenge = s.challenge;
      s.challenge = null;
      if (!macEqual(expect, req.mac)) throw new BaremigError('AUTH', `wrong cluster key for node ${m.name}: check the key in the nodes file`);
      s.authed = true;
      return { mac: authMac(this.opts.key, 'agent', challenge, req.nonce, m.name) } satisfies Responses['auth'];
    }
    if (!s.authed) throw new BaremigError('AUTH', `not authenticated: '${req.t}' needs hello and auth first`);

    switch (req.t) {
      case 'state':
        return {
          node: m.name,
          guest: m.state,
          ramBytes: m.mem?.size ?? 0,
          ramCapacity: m.ramCapacity,
          devices: m.devices.map((d) => (d.mmioBase !== undefined ? { kind: d.kind, name: d.name, mmioBase: d.mmioBase } : { kind: d.kind, name: d.name })),
          dirtyLog: this.dirtyLogOn,
        } satisfies Responses['state'];
      case 'boot': {
        this.requireState('none', 'released');
        for (const mod of req.spec.modules) if (!(mod.name in MODULE_IDS)) throw new BaremigError('BAD_REQUEST', `unknown guest module ${mod.name}`);
        if (req.ramBytes > m.ramCapacity) throw new BaremigError('BAD_REQUEST', `guest needs ${req.ramBytes} bytes, node ${m.name} has ${m.ramCapacity}`);
        try {
          m.boot(req.ramBytes, { modules: req.spec.modules.map((x) => ({ name: x.name as ModuleName, config: x.config })) });
        } catch (e) {
          m.release();
          throw new BaremigError('BAD_REQUEST', `cannot boot guest: ${(e as Error).message}`);
        }
        return {};
      }
      case 'prepareIncoming': {
        this.requireState('none', 'released');
        if (req.ramBytes > m.ramCapacity) throw new BaremigError('BAD_REQUEST', `guest needs ${req.ramBytes} bytes of RAM, node ${m.name} has ${m.ramCapacity}`);
        if (req.ramBytes === 0 || req.ramBytes % (1 << 20) !== 0) throw new BaremigError('BAD_REQUEST', `RAM size ${req.ramBytes} is not a positive multiple of 1 MiB`);
        const have = new Set(m.devices.map((d) => d.kind));
        const missing = req.devices.filter((k) => !have.has(k));
        if (missing.length) throw new BaremigError('BAD_REQUEST', `node ${m.name} lacks device(s) ${missing.join(', ')} the guest uses`);
        m.prepareIncoming(req.ramBytes);
        const token = randomBytes(32);
        this.incomingToken = token;
        this.receiver.open(token, m.mem!);
        s.ownsIncoming = true;
        // Settle the heap now, while the destination only waits: setting up the
        // incoming guest's per-page tables started V8's incremental marking, which
        // an idle process finished only when it got busy again — at the pause
        // (seen: 3 marking threads on 2 cores through the pause, the NIC capture
        // 25–39 ms instead of 19). A hypervisor has no GC; the simulator's runtime
        // can at least have it done before the guest's downtime. (Node processes
        // of a simulated cluster run with --expose-gc; elsewhere this is a no-op.)
        setImmediate(() => (globalThis as { gc?: () => void }).gc?.());
        return { port: this.dataPort, token } satisfies Responses['prepareIncoming'];
      }
      case 'dirtyLogStart':
        this.requireState('running', 'paused');
        this.mem().clearDirty();
        this.dirtyLogOn = true;
        this.pending = new Uint8Array(this.mem().pages);
        this.lastSyncMs = performance.now();
        return {};
      case 'dirtyLogSync': {
        this.requireState('running', 'paused');
        if (!this.dirtyLogOn) throw new BaremigError('STATE', 'dirty logging is off: send dirtyLogStart first');
        const { bitmap } = this.mem().syncDirty();
        // Merged natively: a JavaScript loop over a 4 GiB guest's million pages took 3–6 ms of the pause.
        const count = simAccel().orCount(this.pending!, bitmap);
        const now = performance.now();
        const intervalMs = now - this.lastSyncMs;
        this.lastSyncMs = now;
        return { dirtyPages: count, intervalMs } satisfies Responses['dirtyLogSync'];
      }
      case 'dirtyLogStop':
        this.dirtyLogOn = false;
        this.pending = null;
        return {};
      case 'streamPages': {
        this.requireState('running', 'paused');
        const mem = this.mem();
        let bitmap: Uint8Array | null = null;
        if (req.which === 'dirty') {
          if (!this.pending) throw new BaremigError('STATE', 'dirty logging is off: send dirtyLogStart and dirtyLogSync first');
          bitmap = this.pending;
        }
        const key = `${req.peer.host}:${req.peer.port}:${Buffer.from(req.peer.token).toString('hex')}`;
        let sender = this.senders.get(key);
        if (!sender || !sender.alive) {
          sender = await PageSender.connect(req.peer.host, req.peer.port, req.peer.token);
          this.senders.set(key, sender);
        }
        try {
          const stats = await sender.sendRound(mem, bitmap, req.bandwidth ?? 0);
          // Sent and acknowledged: those pages are no longer pending. (A full pass covers them too.)
          this.pending?.fill(0);
          return { ...stats } satisfies Responses['streamPages'];
        } catch (e) {
          this.senders.delete(key);
          throw e;
        }
      }
      case 'streamStatus': {
        const live = [...this.senders.values()].find((x) => x.live.active)?.live;
        return live ? { active: true, pages: live.pages, wireBytes: live.wireBytes, ms: performance.now() - live.startedMs } : { active: false, pages: 0, wireBytes: 0, ms: 0 };
      }
      case 'memRead': {
        const mem = this.mem();
        if (!mem.inRange(req.addr, req.len)) throw new BaremigError('BAD_REQUEST', `memRead 0x${req.addr.toString(16)}+${req.len} outside guest RAM of ${mem.size} bytes`);
        return { data: mem.readBytes(req.addr, req.len) } satisfies Responses['memRead'];
      }
      case 'memWrite': {
        this.requireState('paused', 'incoming');
        const mem = this.mem();
        if (!mem.inRange(req.addr, req.data.length)) throw new BaremigError('BAD_REQUEST', `memWrite 0x${req.addr.toString(16)}+${req.data.length} outside guest RAM of ${mem.size} bytes`);
        mem.writeBytes(req.addr, req.data);
        return {};
      }
      case 'pause':
        this.requireState('running');
        m.pause();
        if (process.env.BM_TRACE_PAUSE) console.error(`PAUSE_MONO ${process.hrtime.bigint()}`);
        return { guestNs: Number(m.vcpu.tsc), wallMs: m.getVcpu().tscWallMs } satisfies Responses['pause'];
      case 'resume': {
        this.requireState('paused', 'incoming');
        const wasIncoming = m.state === 'incoming';
        try {
          if (req.run === false) {
            if (!wasIncoming) throw new Error('run: false only applies to an incoming guest');
            m.acceptPaused();
          } else m.resume();
        } catch (e) {
          throw new BaremigError('STATE', `cannot resume on ${m.name}: ${(e as Error).message}`);
        }
        if (wasIncoming) {
          this.receiver.closeSlot();
          this.incomingToken = null;
          s.ownsIncoming = false;
        }
        return {};
      }
      case 'vcpuGet':
        this.requireState('running', 'paused');
        const g = m.getVcpu();
        return { vcpu: g.vcpu, wallMs: g.tscWallMs };
      case 'vcpuSet': {
        this.requireState('incoming');
        const problem = checkVcpuState(req.vcpu);
        if (problem) throw new BaremigError('PROTOCOL', `invalid vCPU state: ${problem}`);
        m.setVcpu(req.vcpu as never, req.wallMs);
        return {};
      }
      case 'runProgram':
        this.requireState('paused', 'incoming');
        return { ...(await runIoProgram(this.ioTarget(), req.program)) };
      case 'shadow':
        return { shadow: m.shadowLog() } satisfies Responses['shadow'];
      case 'digest': {
        const t0 = performance.now();
        const d = await this.mem().digest();
        return { hex: d.hex, rehashedPages: d.rehashedPages, ms: performance.now() - t0 } satisfies Responses['digest'];
      }
      case 'release':
        if (m.state === 'running') throw new BaremigError('STATE', `refusing to release the running guest on ${m.name}: pause it first (only a migrated or abandoned guest is released)`);
        for (const snd of this.senders.values()) snd.close();
        this.senders.clear();
        this.receiver.closeSlot();
        this.incomingToken = null;
        this.dirtyLogOn = false;
        this.pending = null;
        m.release();
        return {};
    }
  }
}
