import { spawn } from 'node:child_process';

/**
 * Operator hooks: shell commands run before each guest's migration (pre),
 * after it (post, with its result) and once at the end of the job (end).
 * They see BAREMIG_GUEST, BAREMIG_SOURCE, BAREMIG_DESTINATION and
 * BAREMIG_RESULT in their environment (plus BAREMIG_HOOK, BAREMIG_JOB,
 * BAREMIG_ATTEMPTS). A pre hook that fails (exit status ≠ 0, or killed at
 * its time limit) skips that guest's migration with the hook's output as
 * the reason.
 */
export interface HookEnv {
  hook: 'pre' | 'post' | 'end';
  job: string;
  guest?: string;
  source?: string;
  destination?: string;
  result?: string;
  attempts?: number;
}

export interface HookResult {
  ok: boolean;
  exitCode: number | null;
  signal: string | null;
  /** The end of what the hook printed (stdout and stderr), trimmed. */
  output: string;
  ms: number;
  timedOut: boolean;
}

const OUTPUT_TAIL = 2000;

export function hookEnvironment(h: HookEnv, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    ...base,
    BAREMIG_HOOK: h.hook,
    BAREMIG_JOB: h.job,
    BAREMIG_GUEST: h.guest ?? '',
    BAREMIG_SOURCE: h.source ?? '',
    BAREMIG_DESTINATION: h.destination ?? '',
    BAREMIG_RESULT: h.result ?? '',
    BAREMIG_ATTEMPTS: h.attempts === undefined ? '' : String(h.attempts),
  };
}

/** Runs `cmd` with /bin/sh; never throws. */
export function runHook(cmd: string, env: HookEnv, timeoutMs: number): Promise<HookResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let out = '';
    let timedOut = false;
    const child = spawn('/bin/sh', ['-c', cmd], { env: hookEnvironment(env), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const take = (d: Buffer) => {
      out = (out + d.toString()).slice(-OUTPUT_TAIL * 2);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL'); // the hook's whole process group
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    const done = (exitCode: number | null, signal: string | null, extra = '') => {
      clearTimeout(timer);
      const text = `${out.trim().slice(-OUTPUT_TAIL)}${extra}`;
      resolve({ ok: exitCode === 0 && !timedOut, exitCode, signal, output: timedOut ? `${text}${text ? '\n' : ''}(killed after ${timeoutMs} ms)` : text, ms: performance.now() - t0, timedOut });
    };
    child.once('error', (e) => done(null, null, `cannot run hook: ${e.message}`));
    child.once('close', (code, signal) => done(code, signal));
  });
}

/** One line saying how a hook went. */
export function hookSummary(which: string, r: HookResult): string {
  const status = r.ok ? 'ok' : r.timedOut ? 'timed out' : r.exitCode !== null ? `exit ${r.exitCode}` : `killed by ${r.signal ?? 'error'}`;
  const lastLine = r.output.split('\n').filter(Boolean).at(-1) ?? '';
  return `${which} hook ${status} (${r.ms.toFixed(0)} ms)${lastLine ? `: ${lastLine}` : ''}`;
}
