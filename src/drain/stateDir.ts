import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BaremigError } from '../errors.js';

/**
 * The drain state directory: `<dir of the nodes file>/drain/`. Cordons and
 * journals live there so that every coordinator process using the same
 * nodes file sees them.
 */
export function drainStateDir(nodesFile: string): string {
  return join(dirname(nodesFile), 'drain');
}

export function ensureStateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/** fsync a directory so that a file created or renamed in it survives a crash. */
export function fsyncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on directories; the data files are fsync'd anyway.
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface OwnerInfo {
  pid: number;
  since: string;
  what: string;
}

function readOwner(path: string): OwnerInfo | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as OwnerInfo;
  } catch {
    return null;
  }
}

/**
 * Takes an owner file (created exclusively). If it exists and its pid is
 * alive, returns the owner; a file left by a dead process (a crashed
 * coordinator) is taken over. Returns null when taken.
 */
export function tryOwn(path: string, what: string): OwnerInfo | null {
  for (let i = 0; i < 3; i++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      try {
        writeSync(fd, JSON.stringify({ pid: process.pid, since: new Date().toISOString(), what } satisfies OwnerInfo));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      return null;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const o = readOwner(path);
      if (o && pidAlive(o.pid) && o.pid !== process.pid) return o;
      if (o && o.pid === process.pid) return o;
      // Stale (the owner died) or half-written: take it over.
      rmSync(path, { force: true });
    }
  }
  const o = readOwner(path);
  return o ?? { pid: 0, since: '', what: 'unknown' };
}

export function disown(path: string): void {
  const o = readOwner(path);
  if (!o || o.pid === process.pid) rmSync(path, { force: true });
}

/** The pid owning `path`, if that process is alive. */
export function liveOwner(path: string): OwnerInfo | null {
  const o = readOwner(path);
  return o && pidAlive(o.pid) ? o : null;
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Runs `fn` holding an exclusive lock file (short critical sections: read-modify-write of a small file). */
export function withLock<T>(path: string, fn: () => T, waitMs = 10_000): T {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const owner = tryOwn(path, 'lock');
    if (owner === null) break;
    if (Date.now() > deadline) throw new BaremigError('STATE', `${path} is held by process ${owner.pid} since ${owner.since}; if no baremig runs there, remove the file`);
    sleepSync(20);
  }
  try {
    return fn();
  } finally {
    disown(path);
  }
}
