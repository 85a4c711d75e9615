/** Starts the service network (main.ts) as a child process and waits for its READY line. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ServiceNetworkConfig } from './server.js';
import type { UdpEndpoint } from './udp.js';

const READY = 'BAREMIG-SWITCH-READY ';

export interface SwitchHandle {
  pid: number;
  ports: Record<string, UdpEndpoint>;
  child: ChildProcess;
  exited: Promise<number | null>;
  /** What the switch wrote to stderr (MAC moves), last 16 KiB. */
  log(): string;
  kill(signal?: NodeJS.Signals): void;
}

function entry(): { file: string; execArgv: string[] } {
  const here = import.meta.url;
  if (here.endsWith('.ts')) return { file: fileURLToPath(new URL('./main.ts', here)), execArgv: ['--import', 'tsx'] };
  return { file: fileURLToPath(new URL('./main.js', here)), execArgv: [] };
}

export async function startSwitchProcess(cfg: Omit<ServiceNetworkConfig, 'onMove'>, opts: { startTimeoutMs?: number; detached?: boolean; logFd?: number } = {}): Promise<SwitchHandle> {
  const { file, execArgv } = entry();
  const child = spawn(process.execPath, [...execArgv, file, 'switch'], {
    env: { ...process.env, BAREMIG_SWITCH_CONFIG: JSON.stringify(cfg) },
    stdio: ['ignore', 'pipe', opts.logFd ?? 'pipe'],
    detached: opts.detached ?? false,
  });
  // Never outlive the parent, unless started to (cluster up).
  const onExit = () => child.kill('SIGKILL');
  if (!opts.detached) process.once('exit', onExit);
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-16384);
  });
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code) => {
      process.off('exit', onExit);
      r(code);
    }),
  );
  const ready = await new Promise<{ ports: Record<string, UdpEndpoint>; pid: number }>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`switch did not start within ${opts.startTimeoutMs ?? 20000} ms: ${log.trim()}`));
    }, opts.startTimeoutMs ?? 20000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const i = out.indexOf(READY);
      const nl = out.indexOf('\n', i);
      if (i >= 0 && nl > i) {
        clearTimeout(timer);
        resolve(JSON.parse(out.slice(i + READY.length, nl)));
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`switch exited (code ${code}) before it was ready: ${log.trim()}`));
    });
  });
  if (opts.detached) {
    child.stdout!.destroy();
    child.unref();
  }
  return {
    pid: ready.pid,
    ports: ready.ports,
    child,
    exited,
    log: () => log,
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}
