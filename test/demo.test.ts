import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const MAIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');

describe('baremig demo (the README main job)', () => {
  it('migrates a running guest with its 8254, 8259 and RTL8169, verified, and the guest and its network go on', async () => {
    const r = await run(process.execPath, ['--import', 'tsx', MAIN, 'demo', '--ram', '64M', '--json'], { timeout: 120_000 });
    const j = JSON.parse(r.stdout);
    expect(j.ok).toBe(true);
    expect(j.verified).toBe(true);
    expect(j.guestContinued).toBe(true);
    expect(j.heartbeatOnDestination.advancing).toBe(true);
    expect(j.devices.map((d: { kind: string }) => d.kind)).toEqual(['pit', 'rtl8169', 'pic']);
    expect(j.network.datagramsAfter).toBeGreaterThan(j.network.datagramsBefore);
    expect(j.network).toMatchObject({ duplicates: 0, outOfOrder: 0, pingDuplicates: 0 });
    expect(j.downtimeMs).toBeLessThan(j.downtimeLimitMs * 2);
  });
});
