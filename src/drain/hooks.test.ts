import { describe, expect, it } from 'vitest';
import { hookSummary, runHook } from './hooks.js';

describe('hooks', () => {
  it('see the guest, source, destination and result in their environment', async () => {
    const r = await runHook('echo "$BAREMIG_HOOK $BAREMIG_GUEST $BAREMIG_SOURCE $BAREMIG_DESTINATION $BAREMIG_RESULT $BAREMIG_JOB"', { hook: 'post', job: 'drain-1', guest: 'guest@n1', source: 'n1', destination: 'n5', result: 'completed' }, 5000);
    expect(r).toMatchObject({ ok: true, exitCode: 0, output: 'post guest@n1 n1 n5 completed drain-1' });
  });
  it('a failing hook reports its status and output', async () => {
    const r = await runHook('echo "app refuses to be moved" >&2; exit 3', { hook: 'pre', job: 'j' }, 5000);
    expect(r).toMatchObject({ ok: false, exitCode: 3, output: 'app refuses to be moved' });
    expect(hookSummary('pre', r)).toMatch(/pre hook exit 3 .*app refuses to be moved/);
  });
  it('a hook that hangs is killed at its time limit', async () => {
    const t0 = Date.now();
    const r = await runHook('sleep 30', { hook: 'pre', job: 'j' }, 200);
    expect(r.ok).toBe(false);
    expect(r.timedOut).toBe(true);
    expect(r.output).toMatch(/killed after 200 ms/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
