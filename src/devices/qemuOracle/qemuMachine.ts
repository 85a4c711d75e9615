/**
 * A stopped QEMU `pc` machine (TCG, -S) driven through monitor commands, used
 * as an independent reference for the 8254 and 8259 models.
 *
 * Transport: QMP on the process's stdin/stdout (`-qmp stdio`), and every
 * device operation is an HMP command line sent with QMP's
 * `human-monitor-command` (`o /b PORT VAL`, `i /b PORT`, `info pic`,
 * `migrate`, `info migrate`). QMP frames each reply as one JSON object with
 * the id of its request, so a reply can never be confused with a prompt, an
 * echo or another reply, which a raw HMP stream (prompt "(qemu) ", echoed
 * input, no end marker) cannot promise. stdio needs no socket path and no
 * connect race; QEMU's stderr is kept for error messages.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { accessSync, constants as fsConstants, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { BaremigError } from '../../errors.js';
import { MigrationStream, isIncompleteStreamError } from './migrationStream.js';
import { type QemuDeviceState, deviceStateFromStream } from './qemuState.js';

export const QEMU_BINARY = 'qemu-system-x86_64';

/**
 * Path of qemu-system-x86_64 as `which` finds it, or null when absent.
 * Falls back to scanning PATH where `which` itself is missing.
 */
export function findQemu(binary: string = QEMU_BINARY): string | null {
  const r = spawnSync('which', [binary], { encoding: 'utf8' });
  if (!r.error) {
    const path = r.status === 0 ? r.stdout.trim().split('\n')[0] : '';
    return path ? path : null;
  }
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return null;
}

export interface QemuMachineOptions {
  /** Path or name of the binary; default: found with `which`. */
  binary?: string;
  /** Guest RAM in MiB (the migration stream carries it); default 16. */
  memoryMb?: number;
  /** Limit for start-up and for each monitor command, ms; default 15000. */
  timeoutMs?: number;
  /** Limit for a whole saveDeviceState, ms; default 30000. */
  migrateTimeoutMs?: number;
  /** More command-line arguments (the memory benchmark gives a RAM backend and -incoming). */
  extraArgs?: string[];
}

export interface InfoPicChip {
  irr: number;
  imr: number;
  isr: number;
  /** priority_add */
  hprio: number;
  irq_base: number;
  /** read_reg_select */
  rr_sel: number;
  elcr: number;
  /** special_fully_nested_mode */
  fnm: number;
}

export interface InfoPic {
  master: InfoPicChip;
  slave: InfoPicChip;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  what: string;
}

const DIR_PREFIX = 'baremig-qemu-';
const OWNER_FILE = 'owner.pid';
const QEMU_PID_FILE = 'qemu.pid';

// Every live machine, so that a process exit (a failed test included) never
// leaves a QEMU or its temporary directory behind.
const live = new Set<QemuMachine>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const m of live) m.killNow();
  });
  sweepOrphans();
}

/** True if `pid` exists and is not a zombie (an unreaped dead process still answers kill 0). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/**
 * A Node process killed by SIGKILL runs no exit hook, and QEMU does not quit
 * when its QMP stdin closes. Each machine directory therefore records its
 * owner's pid and QEMU's (-pidfile); the first start in a process ends the
 * QEMUs of owners that are gone and removes their directories. A QEMU is
 * killed only if its command line names that very directory.
 */
function sweepOrphans(): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir()).filter((n) => n.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const name of entries) {
    const dir = join(tmpdir(), name);
    try {
      const owner = Number(readFileSync(join(dir, OWNER_FILE), 'utf8').trim());
      if (!Number.isInteger(owner) || owner <= 0 || pidAlive(owner)) continue;
      let qemuPid = 0;
      try {
        qemuPid = Number(readFileSync(join(dir, QEMU_PID_FILE), 'utf8').trim());
      } catch {
        // QEMU never wrote it, or removed it on exit
      }
      if (Number.isInteger(qemuPid) && qemuPid > 0 && pidAlive(qemuPid)) {
        const cmdline = readFileSync(`/proc/${qemuPid}/cmdline`, 'utf8');
        if (cmdline.includes(dir)) process.kill(qemuPid, 'SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // not ours, not readable, or already gone: leave it
    }
  }
}

const PORT_LINE = /^port([bwl])\[0x([0-9a-f]+)\]\s*=\s*(?:0x)?([0-9a-f]+)\s*$/i;
const PIC_LINE =
  /^pic([01]): irr=([0-9a-f]+) imr=([0-9a-f]+) isr=([0-9a-f]+) hprio=(\d+) irq_base=([0-9a-f]+) rr_sel=(\d+) elcr=([0-9a-f]+) fnm=(\d+)\s*$/i;
/** `Migration status: completed` (QEMU 7.x/8.x) or `Status: completed` (later HMP layouts). */
const MIGRATION_STATUS = /^\s*(?:Migration\s+)?status:\s*(\S+)/im;
/** Characters allowed in the migration file path, which goes through HMP string parsing and sh -c. */
const SAFE_PATH = /^[A-Za-z0-9/._+-]+$/;

function checkByte(what: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new BaremigError('USAGE', `${what} ${v} is not an integer in 0..0x${max.toString(16)}`);
}

/**
 * One QEMU process. Start with `QemuMachine.start()`; always end with
 * `quit()` (idempotent), in a finally block.
 */
export class QemuMachine {
  readonly dir: string;
  /** QEMU's version string from the QMP greeting, e.g. "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)". */
  version = '';
  private child: ChildProcess | null = null;
  private stdoutBuf = '';
  private stderrTail = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private greeting: Pending | null = null;
  private exited = false;
  private exitPromise: Promise<void>;
  private resolveExit!: () => void;
  private saved = false;
  private closed = false;

  private constructor(private readonly opts: Required<QemuMachineOptions>) {
    this.dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
    writeFileSync(join(this.dir, OWNER_FILE), `${process.pid}\n`);
    this.exitPromise = new Promise((r) => (this.resolveExit = r));
  }

  /** Starts QEMU stopped (-S) and completes the QMP handshake. */
  static async start(options: QemuMachineOptions = {}): Promise<QemuMachine> {
    const binary = options.binary ?? findQemu();
    if (!binary) throw new BaremigError('DEVICE', `${QEMU_BINARY} not found on PATH (Debian: apt-get install qemu-system-x86)`);
    const m = new QemuMachine({
      binary,
      memoryMb: options.memoryMb ?? 16,
      timeoutMs: options.timeoutMs ?? 15_000,
      migrateTimeoutMs: options.migrateTimeoutMs ?? 30_000,
      extraArgs: options.extraArgs ?? [],
    });
    try {
      await m.launch();
      return m;
    } catch (e) {
      await m.quit();
      throw e;
    }
  }

  private async launch(): Promise<void> {
    installExitHook();
    live.add(this);
    const args = [
      '-machine', 'pc,accel=tcg',
      '-S',
      '-nodefaults',
      '-nographic',
      '-display', 'none',
      '-m', String(this.opts.memoryMb),
      '-qmp', 'stdio',
      '-pidfile', join(this.dir, QEMU_PID_FILE),
      ...this.opts.extraArgs,
    ];
    const greeted = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.greeting = null;
        reject(this.error('TIMEOUT', `no QMP greeting within ${this.opts.timeoutMs} ms`));
      }, this.opts.timeoutMs);
      this.greeting = { resolve, reject, timer, what: 'QMP greeting' };
    });
    const child = spawn(this.opts.binary, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: this.dir });
    this.child = child;
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => this.onStdout(chunk));
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-4000);
    });
    child.stdin!.on('error', () => {
      // EPIPE after QEMU died: reported through the exit handler.
    });
    child.on('error', (err) => this.onExit(`could not run ${this.opts.binary}: ${err.message}`));
    child.on('exit', (code, signal) => this.onExit(`QEMU exited (${signal ?? `code ${code}`})`));

    const greet = (await greeted) as { QMP?: { version?: { qemu?: { major: number; minor: number; micro: number }; package?: string } } };
    const v = greet.QMP?.version;
    if (v?.qemu) this.version = `${v.qemu.major}.${v.qemu.minor}.${v.qemu.micro}${v.package ? ` (${v.package.trim()})` : ''}`;
    await this.qmp('qmp_capabilities');
    const status = (await this.qmp('query-status')) as { running?: boolean; status?: string };
    if (status.running !== false) throw this.error('DEVICE', `machine is not stopped after -S (status ${status.status})`);
  }

  /** Keeps (true) or stops keeping (false) the Node event loop alive for this process. */
  setRef(ref: boolean): void {
    const c = this.child;
    if (!c || this.exited) return;
    const streams = [c.stdin, c.stdout, c.stderr] as Array<{ ref?: () => void; unref?: () => void } | null>;
    if (ref) {
      c.ref();
      for (const s of streams) s?.ref?.();
    } else {
      c.unref();
      for (const s of streams) s?.unref?.();
    }
  }

  private error(code: 'DEVICE' | 'TIMEOUT', message: string): BaremigError {
    const tail = this.stderrTail.trim();
    return new BaremigError(code, `QEMU: ${message}${tail ? `; stderr: ${tail}` : ''}`, { binary: this.opts.binary });
  }

  private onStdout(chunk: string): void {
    this.stdoutBuf += chunk;
    for (let nl = this.stdoutBuf.indexOf('\n'); nl >= 0; nl = this.stdoutBuf.indexOf('\n')) {
      const line = this.stdoutBuf.slice(0, nl).trim();
      this.stdoutBuf = this.stdoutBuf.slice(nl + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.failAll(this.error('DEVICE', `unparsable QMP output: ${line.slice(0, 200)}`));
      return;
    }
    if ('QMP' in msg) {
      const g = this.greeting;
      this.greeting = null;
      if (g) {
        clearTimeout(g.timer);
        g.resolve(msg);
      }
      return;
    }
    if ('event' in msg) return; // asynchronous events (SHUTDOWN, ...) are not needed
    const id = typeof msg['id'] === 'string' ? msg['id'] : undefined;
    const p = id !== undefined ? this.pending.get(id) : undefined;
    if (!p || id === undefined) {
      this.failAll(this.error('DEVICE', `QMP reply without a matching request: ${line.slice(0, 200)}`));
      return;
    }
    this.pending.delete(id);
    clearTimeout(p.timer);
    if ('error' in msg) {
      const err = msg['error'] as { class?: string; desc?: string };
      p.reject(this.error('DEVICE', `${p.what} failed: ${err.class ?? ''} ${err.desc ?? JSON.stringify(err)}`));
    } else {
      p.resolve(msg['return']);
    }
  }

  private failAll(err: Error): void {
    if (this.greeting) {
      clearTimeout(this.greeting.timer);
      this.greeting.reject(err);
      this.greeting = null;
    }
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }

  private onExit(reason: string): void {
    if (this.exited) return;
    this.exited = true;
    this.resolveExit();
    this.failAll(this.error('DEVICE', reason));
  }

  /** Sends one QMP command; resolves with its `return` value. */
  qmp(execute: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.exited || !this.child) return Promise.reject(this.error('DEVICE', `${execute}: QEMU is not running`));
    const id = `c${this.nextId++}`;
    const what = execute === 'human-monitor-command' ? `HMP "${String(args?.['command-line'])}"` : `QMP ${execute}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(this.error('TIMEOUT', `${what}: no reply within ${this.opts.timeoutMs} ms`));
      }, this.opts.timeoutMs);
      this.pending.set(id, { resolve, reject, timer, what });
      this.child!.stdin!.write(`${JSON.stringify(args ? { execute, arguments: args, id } : { execute, id })}\n`);
    });
  }

  /** Runs an HMP command line and returns its output text (CRLFs normalised). */
  async hmp(commandLine: string): Promise<string> {
    const out = await this.qmp('human-monitor-command', { 'command-line': commandLine });
    if (typeof out !== 'string') throw this.error('DEVICE', `HMP "${commandLine}" returned ${JSON.stringify(out)}`);
    return out.replace(/\r\n/g, '\n');
  }

  /** Byte write to an I/O port: HMP `o /b PORT VAL`. */
  async outb(port: number, value: number): Promise<void> {
    checkByte('port', port, 0xffff);
    checkByte('value', value, 0xff);
    const cmd = `o /b 0x${port.toString(16)} 0x${value.toString(16)}`;
    const out = await this.hmp(cmd);
    if (out.trim() !== '') throw this.error('DEVICE', `HMP "${cmd}" said: ${out.trim()}`);
  }

  /** Byte read from an I/O port: HMP `i /b PORT`, output `portb[0x0021] = 0xff`. */
  async inb(port: number): Promise<number> {
    checkByte('port', port, 0xffff);
    const cmd = `i /b 0x${port.toString(16)}`;
    const out = (await this.hmp(cmd)).trim();
    const m = PORT_LINE.exec(out);
    if (!m || m[1] !== 'b' || parseInt(m[2]!, 16) !== port) throw this.error('DEVICE', `HMP "${cmd}": unexpected output "${out}"`);
    const value = parseInt(m[3]!, 16);
    if (value > 0xff) throw this.error('DEVICE', `HMP "${cmd}": byte read returned ${value}`);
    return value;
  }

  /** `info pic`, both 8259s (QEMU prints the slave first; order does not matter here). */
  async infoPic(): Promise<InfoPic> {
    const out = await this.hmp('info pic');
    const chips: Partial<Record<'0' | '1', InfoPicChip>> = {};
    for (const line of out.split('\n')) {
      const m = PIC_LINE.exec(line.trim());
      if (!m) continue;
      chips[m[1] as '0' | '1'] = {
        irr: parseInt(m[2]!, 16),
        imr: parseInt(m[3]!, 16),
        isr: parseInt(m[4]!, 16),
        hprio: parseInt(m[5]!, 10),
        irq_base: parseInt(m[6]!, 16),
        rr_sel: parseInt(m[7]!, 10),
        elcr: parseInt(m[8]!, 16),
        fnm: parseInt(m[9]!, 10),
      };
    }
    if (!chips['0'] || !chips['1']) throw this.error('DEVICE', `info pic: no pic0/pic1 lines in: ${out.slice(0, 500)}`);
    return { master: chips['0'], slave: chips['1'] };
  }

  /**
   * Writes the migration stream to a file in this machine's directory and
   * returns its bytes. QEMU refuses a second migration from the
   * "postmigrate" state, so this works once per process.
   */
  async migrateToFile(): Promise<Uint8Array> {
    if (this.saved) throw this.error('DEVICE', 'this QEMU has already been migrated once; start a new one');
    this.saved = true;
    const file = join(this.dir, 'state.bin');
    if (!SAFE_PATH.test(file)) {
      throw this.error('DEVICE', `temporary path ${file} has characters unsafe for "exec:"; set TMPDIR to a plain path`);
    }
    const deadline = Date.now() + this.opts.migrateTimeoutMs;
    const out = (await this.hmp(`migrate "exec:cat > ${file}"`)).trim();
    // Through QMP, HMP migrate runs detached and says so; anything else is an error.
    if (out !== '' && !/continuing detached/i.test(out)) throw this.error('DEVICE', `migrate: ${out}`);

    let status = '';
    for (let wait = 1; ; wait = Math.min(wait * 2, 20)) {
      const info = await this.hmp('info migrate');
      status = MIGRATION_STATUS.exec(info)?.[1] ?? '';
      if (status === 'completed') break;
      if (status === 'failed' || status === 'cancelled' || status === 'cancelling') {
        throw this.error('DEVICE', `migration ${status}: ${info.trim().slice(-400)}`);
      }
      if (Date.now() > deadline) throw this.error('TIMEOUT', `migration still "${status}" after ${this.opts.migrateTimeoutMs} ms`);
      await sleep(wait);
    }
    // "completed" is set before QEMU closes the pipe to `cat`, so the file
    // may still be growing: wait until it ends with a whole vmdesc.
    for (let wait = 1; ; wait = Math.min(wait * 2, 20)) {
      let bytes: Uint8Array | null = null;
      try {
        bytes = await readFile(file);
        new MigrationStream(bytes);
        return bytes;
      } catch (e) {
        const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
        if (!missing && !isIncompleteStreamError(e)) throw e;
        if (Date.now() > deadline) {
          throw this.error('TIMEOUT', `migration file ${missing ? 'missing' : `incomplete (${bytes?.length ?? 0} bytes)`} after completion`);
        }
      }
      await sleep(wait);
    }
  }

  /** Migrates to a file and decodes the "i8254" and both "i8259" sections. */
  async saveDeviceState(): Promise<QemuDeviceState> {
    return deviceStateFromStream(new MigrationStream(await this.migrateToFile()));
  }

  /** Ends QEMU (QMP quit, then SIGKILL if it lingers) and removes the temporary directory. Idempotent. */
  async quit(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.child && !this.exited) {
      this.setRef(true);
      this.qmp('quit').catch(() => {
        // the reply races with the exit; the exit is what matters
      });
      const t = setTimeout(() => this.child?.kill('SIGKILL'), 2_000);
      await this.exitPromise;
      clearTimeout(t);
    }
    this.removeDir();
    live.delete(this);
  }

  /** Synchronous last-resort cleanup (process exit): SIGKILL and remove files. */
  killNow(): void {
    this.closed = true;
    if (this.child && !this.exited) this.child.kill('SIGKILL');
    this.removeDir();
    live.delete(this);
  }

  private removeDir(): void {
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch {
      // best effort: nothing else to do on cleanup paths
    }
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** OS process id of QEMU (undefined if it never started). */
  get pid(): number | undefined {
    return this.child?.pid;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
