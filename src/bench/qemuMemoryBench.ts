import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QemuMachine, findQemu } from '../devices/qemuOracle/qemuMachine.js';
import { seededRandomFill } from '../sim/guest/memoryLoad.js';

const MiB = 1024 * 1024;

export interface QemuBenchResult {
  version: string;
  totalMs: number;
  transferredBytes: number;
  prefaultedDestination: boolean;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** A RAM image alternating 1 MiB of random bytes and 1 MiB of zeros, as our benchmark guest. */
function writeImage(path: string, bytes: number): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(MiB);
  try {
    for (let off = 0, i = 0; off < bytes; off += MiB, i++) {
      if (i % 2 === 0) {
        seededRandomFill(42, chunk, off);
        writeSync(fd, chunk, 0, MiB, off);
      } else writeSync(fd, Buffer.alloc(MiB), 0, MiB, off);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * QEMU's own migration of the same content, for a side-by-side figure: a
 * stopped TCG `pc` guest whose RAM is a private mapping of the image, to a
 * fresh QEMU listening on loopback TCP. total-time is QEMU's own measure.
 */
export async function runQemuMemoryBench(ram: number, prefault: boolean): Promise<QemuBenchResult | { skipped: string }> {
  if (!findQemu()) return { skipped: 'qemu-system-x86_64 not installed (apt-get install qemu-system-x86)' };
  const dir = mkdtempSync(join(tmpdir(), 'baremig-qemu-bench-'));
  const image = join(dir, 'ram.img');
  writeImage(image, ram);
  const mb = ram / MiB;
  const port = await freePort();
  let src: QemuMachine | null = null;
  let dst: QemuMachine | null = null;
  try {
    dst = await QemuMachine.start({
      memoryMb: mb,
      migrateTimeoutMs: 120_000,
      extraArgs: ['-object', `memory-backend-ram,id=ram0,size=${mb}M${prefault ? ',prealloc=on' : ''}`, '-machine', 'memory-backend=ram0', '-incoming', `tcp:127.0.0.1:${port}`],
    });
    src = await QemuMachine.start({
      memoryMb: mb,
      migrateTimeoutMs: 120_000,
      extraArgs: ['-object', `memory-backend-file,id=ram0,size=${mb}M,mem-path=${image},share=off`, '-machine', 'memory-backend=ram0'],
    });
    // QEMU's default 128 MiB/s cap would make this a test of the cap: lift it, as our loopback run has none.
    await src.qmp('migrate-set-parameters', { 'max-bandwidth': 100 * 1024 * MiB });
    await src.qmp('migrate', { uri: `tcp:127.0.0.1:${port}` });
    for (;;) {
      const q = (await src.qmp('query-migrate')) as { status: string; 'total-time'?: number; ram?: { transferred: number }; 'error-desc'?: string };
      if (q.status === 'completed') return { version: src.version, totalMs: q['total-time'] ?? NaN, transferredBytes: q.ram?.transferred ?? NaN, prefaultedDestination: prefault };
      if (q.status === 'failed' || q.status === 'cancelled') throw new Error(`QEMU migration ${q.status}: ${q['error-desc'] ?? ''}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await src?.quit();
    await dst?.quit();
    rmSync(dir, { recursive: true, force: true });
  }
}
