/**
 * What the experiments need from the machine: one clock, a clean-up stack
 * that runs whatever way a run ends (success, failure, Ctrl-C, a crash), a
 * network namespace joined to the host by a veth pair, and processes run
 * inside it whose output lines are stamped with the time they arrived.
 *
 * Only addresses inside the namespace the experiment creates are used
 * (10.77.x.x); the host end of the veth carries no address at all.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { bridgeSupport } from '../sim/network/bridge.js';

/** Wall-clock milliseconds (Unix epoch) with sub-millisecond resolution: the one clock of every series. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Resolves after `ms`, or rejects with the signal's reason when it fires first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(abortReason(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export class Interrupted extends Error {
  constructor(message = 'interrupted') {
    super(message);
    this.name = 'Interrupted';
  }
}

function abortReason(s: AbortSignal): Error {
  return s.reason instanceof Error ? s.reason : new Interrupted();
}

/** Polls `f` every 20 ms until it returns something truthy; rejects after `ms` or on abort. */
export async function waitFor<T>(what: string, f: () => Promise<T | null | undefined | false> | T | null | undefined | false, ms: number, signal?: AbortSignal): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20, signal);
  }
}

interface Step {
  name: string;
  run: () => Promise<void> | void;
  /** What can still be done synchronously when the process is exiting. */
  sync?: () => void;
}

/**
 * Undo steps, run last-in first-out by run(). Until then, a process 'exit'
 * hook runs their synchronous forms, so a crash or an uncaught exception
 * still removes namespaces and kills children.
 */
export class Cleanup {
  private steps: Step[] = [];
  private done = false;
  private readonly onExit = () => {
    for (const s of this.steps.reverse()) {
      try {
        s.sync?.();
      } catch {
        // best effort at exit
      }
    }
  };

  constructor(private readonly log: (line: string) => void = () => {}) {
    process.once('exit', this.onExit);
  }

  add(name: string, run: () => Promise<void> | void, sync?: () => void): void {
    if (this.done) throw new Error('clean-up already ran');
    this.steps.push({ name, run, ...(sync ? { sync } : {}) });
  }

  /** Runs every step (each once), even when some fail; returns the failures. */
  async run(): Promise<string[]> {
    if (this.done) return [];
    this.done = true;
    process.off('exit', this.onExit);
    const errors: string[] = [];
    while (this.steps.length) {
      const s = this.steps.pop()!;
      try {
        await s.run();
      } catch (e) {
        errors.push(`${s.name}: ${(e as Error).message}`);
        try {
          s.sync?.();
        } catch {
          // the step's own failure is reported above
        }
      }
    }
    if (errors.length) this.log(`clean-up: ${errors.join('; ')}`);
    return errors;
  }
}

/** Runs a command; throws with its stderr when it fails. */
export function sh(args: string[]): string {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  if (r.error) throw new Error(`${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr.trim() || `exit ${r.status}`}`);
  return r.stdout;
}

function hasTool(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

/** Why the real-peer experiment cannot run here, or null when it can. */
export function realPeersMissing(): string | null {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, packet capture)';
  const debian: Record<string, string> = { ip: 'iproute2', ping: 'iputils-ping', iperf: 'iperf', stdbuf: 'coreutils' };
  for (const [tool, pkg] of Object.entries(debian)) if (!hasTool(tool)) return `'${tool}' is not installed (Debian package ${pkg})`;
  const b = bridgeSupport();
  if (!b.ok) return b.reason;
  return null;
}

export interface Namespace {
  name: string;
  /** The veth end inside the namespace (carries `peerIp`). */
  nsIf: string;
  /** The veth end on the host (no address; the service network bridges it). */
  hostIf: string;
  peerIp: string;
}

/**
 * A network namespace with `peerIp/prefix` on one end of a veth pair; the
 * other end stays on the host, up, without addresses or IPv6. Removal is
 * registered with `cleanup` before anything is created.
 */
export function createNamespace(cleanup: Cleanup, o: { tag: string; peerIp: string; prefixLen: number }): Namespace {
  const ns: Namespace = {
    name: `bmx${o.tag}`,
    hostIf: `bmxh${o.tag}`.slice(0, 15),
    nsIf: `bmxn${o.tag}`.slice(0, 15),
    peerIp: o.peerIp,
  };
  const remove = () => {
    spawnSync('ip', ['netns', 'del', ns.name]);
    spawnSync('ip', ['link', 'del', ns.hostIf]);
  };
  cleanup.add(`namespace ${ns.name}`, remove, remove);
  sh(['ip', 'netns', 'add', ns.name]);
  sh(['ip', 'link', 'add', ns.hostIf, 'type', 'veth', 'peer', 'name', ns.nsIf, 'netns', ns.name]);
  sh(['ip', '-n', ns.name, 'addr', 'add', `${o.peerIp}/${o.prefixLen}`, 'dev', ns.nsIf]);
  sh(['ip', '-n', ns.name, 'link', 'set', 'lo', 'up']);
  sh(['ip', '-n', ns.name, 'link', 'set', ns.nsIf, 'up']);
  sh(['sysctl', '-qw', `net.ipv6.conf.${ns.hostIf}.disable_ipv6=1`]);
  sh(['ip', 'link', 'set', ns.hostIf, 'up']);
  return ns;
}

/** One output line and the wall-clock time it reached us. */
export interface StampedLine {
  wallMs: number;
  line: string;
}

export interface NsProcess {
  readonly child: ChildProcess;
  readonly lines: StampedLine[];
  readonly exited: Promise<number | null>;
  /** Called for each line as it arrives (after it is stored). */
  onLine?: (l: StampedLine) => void;
  /** Sends `signal`, then SIGKILL if the process is still there after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

/**
 * Runs `cmd` inside the namespace with its stdout line-buffered (stdbuf),
 * stamping every line of stdout and stderr with wallMs() as it arrives.
 */
export function spawnInNamespace(cleanup: Cleanup, ns: Namespace, cmd: string[]): NsProcess {
  const child = spawn('ip', ['netns', 'exec', ns.name, 'stdbuf', '-oL', '-eL', ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: StampedLine[] = [];
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const p: NsProcess = {
    child,
    lines,
    exited,
    async stop(signal = 'SIGINT', graceMs = 2000) {
      if (!alive()) return;
      child.kill(signal);
      const t = setTimeout(() => alive() && child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
      // Lines still in the pipe.
      await new Promise((r) => setImmediate(r));
    },
  };
  for (const stream of [child.stdout!, child.stderr!]) {
    let buf = '';
    stream.on('data', (d: Buffer) => {
      const t = wallMs();
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const l = { wallMs: t, line: buf.slice(0, i) };
        buf = buf.slice(i + 1);
        lines.push(l);
        p.onLine?.(l);
      }
    });
  }
  cleanup.add(`${cmd[0]} in ${ns.name}`, () => p.stop('SIGINT', 1000), () => alive() && child.kill('SIGKILL'));
  return p;
}
