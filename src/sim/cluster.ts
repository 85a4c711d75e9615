import { type ChildProcess, spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BaremigError } from '../errors.js';
import { READY_PREFIX, type SimNodeConfig } from './node/config.js';

export interface SimNodeHandle {
  name: string;
  url: string;
  port: number;
  dataPort: number;
  pid: number;
  child: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

/** Nodes started attached to this process: they must not outlive it, whatever way it ends. */
const attached = new Set<ChildProcess>();
let exitHook = false;
function killAttachedOnExit(child: ChildProcess): void {
  attached.add(child);
  child.once('exit', () => attached.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const c of attached) c.kill('SIGKILL');
  });
}

/** The node entry point next to this file, compiled or not. */
function nodeEntry(): { file: string; execArgv: string[] } {
  const here = import.meta.url;
  if (here.endsWith('.ts')) return { file: fileURLToPath(new URL('./node/main.ts', here)), execArgv: ['--import', 'tsx'] };
  return { file: fileURLToPath(new URL('./node/main.js', here)), execArgv: [] };
}

export interface StartNodeOptions {
  /** Keep running after this process exits (cluster up). */
  detached?: boolean;
  /** Where the node writes its log (stderr). Default: inherited / ignored. */
  logFile?: string;
  startTimeoutMs?: number;
}

/** Starts one simulated node process and waits for its READY line. */
export async function startNode(cfg: SimNodeConfig, opts: StartNodeOptions = {}): Promise<SimNodeHandle> {
  const { file, execArgv } = nodeEntry();
  const logFd = opts.logFile ? openSync(opts.logFile, 'a') : 'ignore';
  // The config (with the cluster key) goes in the environment, which only the
  // same user can read, not on the command line, which `ps` shows everyone.
  // --expose-gc: the agent settles its heap when a guest is about to arrive
  // (server.ts, prepareIncoming), so that no major GC is pending at the pause.
  const child = spawn(process.execPath, [...execArgv, '--max-old-space-size=512', '--expose-gc', file, cfg.name], {
    env: { ...process.env, BAREMIG_NODE_CONFIG: JSON.stringify(cfg) },
    stdio: ['ignore', 'pipe', opts.logFile ? logFd : 'pipe'],
    detached: opts.detached ?? false,
  });
  if (typeof logFd === 'number') closeSync(logFd);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const ready = await new Promise<{ port: number; dataPort: number; pid: number }>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new BaremigError('AGENT_UNREACHABLE', `node ${cfg.name} did not start within ${opts.startTimeoutMs ?? 20000} ms${stderr ? `: ${stderr.trim()}` : ''}`));
    }, opts.startTimeoutMs ?? 20000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const i = out.indexOf(READY_PREFIX);
      const nl = out.indexOf('\n', i);
      if (i >= 0 && nl > i) {
        clearTimeout(timer);
        resolve(JSON.parse(out.slice(i + READY_PREFIX.length, nl)));
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new BaremigError('AGENT_UNREACHABLE', `node ${cfg.name} exited (code ${code}) before it was ready${stderr ? `: ${stderr.trim()}` : ''}`));
    });
  });
  if (!opts.detached) killAttachedOnExit(child);
  if (opts.detached) {
    child.stdout!.destroy();
    child.stderr?.destroy();
    child.unref();
  }
  return {
    name: cfg.name,
    url: `ws://${cfg.host}:${ready.port}`,
    port: ready.port,
    dataPort: ready.dataPort,
    pid: ready.pid,
    child,
    exited,
    kill: (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}
