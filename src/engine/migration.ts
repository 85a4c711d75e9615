import { BaremigError, asBaremigError } from '../errors.js';
import type { AgentClient } from '../protocol/client.js';
import { Progress, decide, expectedDowntimeMs } from './convergence.js';
import { type CapturedDevice, captureDevices, planDevices, restoreDevices, restoreEstimateMs, rollbackDevices } from './devicePhase.js';
import type { GuestObserver } from './guestObserver.js';
import { DEFAULT_OPTIONS, type DeviceReport, type MigrationEvent, type MigrationOptions, type MigrationSummary, type Phase } from './types.js';

const PAGE = 4096;

export interface MigrationParams {
  src: AgentClient;
  dst: AgentClient;
  /** How the source agent reaches the destination's page stream (host as seen from the source). */
  dstDataHost: string;
  options?: Partial<MigrationOptions>;
  observer?: GuestObserver;
  onEvent?: (e: MigrationEvent) => void;
  /** Tests: called as each phase begins, awaited (fault injection). */
  onPhase?: (p: Phase) => Promise<void> | void;
  /** Where the source connects for the page stream (tests put a proxy in between). */
  peerAddress?: (host: string, port: number) => { host: string; port: number };
}

/**
 * One live migration as an explicit state machine:
 *   setup → precopy(round n) → stop → final-copy → devices → vcpu → verify → resume → commit
 * with rollback (resume on the source) from every phase before the
 * destination runs. Once the destination runs the source never resumes.
 * Resolves with a summary (ok or not); never leaves two running copies.
 */
export async function migrate(p: MigrationParams): Promise<MigrationSummary> {
  const o: MigrationOptions = { ...DEFAULT_OPTIONS, ...p.options };
  const { src, dst } = p;
  const t0 = performance.now();
  const elapsed = () => performance.now() - t0;
  const progress = new Progress();
  const emit = (e: MigrationEvent) => p.onEvent?.(e);
  let phase: Phase = 'setup';
  // Cancel (Ctrl-C, drain abort) and the time limit act at once, also in the
  // middle of a long round: until the destination runs, they roll back.
  const cancel = new AbortController();
  const onCancel = () => cancel.abort(new BaremigError('CANCELLED', 'migration cancelled by the operator'));
  if (o.signal?.aborted) onCancel();
  o.signal?.addEventListener('abort', onCancel, { once: true });
  const deadline = o.timeoutMs > 0 ? setTimeout(() => cancel.abort(new BaremigError('TIMEOUT', `migration exceeded its time limit of ${o.timeoutMs} ms`)), o.timeoutMs) : null;
  const enter = async (ph: Phase) => {
    phase = ph;
    emit({ type: 'phase', phase: ph, elapsedMs: elapsed(), progress: progress.current });
    await p.onPhase?.(ph);
    if (cancel.signal.aborted) throw cancel.signal.reason as BaremigError;
  };
  /** A step that a cancel may cut short: the destination drops its copy, which ends the page stream. */
  const interruptible = <T>(running: Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        void dst.request('release', {}, 5000).catch(() => undefined);
        reject(cancel.signal.reason as BaremigError);
      };
      if (cancel.signal.aborted) return onAbort();
      cancel.signal.addEventListener('abort', onAbort, { once: true });
      running.then(resolve, reject).finally(() => cancel.signal.removeEventListener('abort', onAbort));
    });
  let limit = o.downtimeLimitMs;
  let rounds = 0;
  let bytesSent = 0;
  let pagesSent = 0;
  let zeroPages = 0;
  let lastExpected = 0;
  let srcPaused = false;
  let dstPrepared = false;
  let captured: CapturedDevice[] = [];
  let pauseAt = 0;
  let deviceReports: DeviceReport[] = [];
  const breakdown: Record<string, number> = {};
  let ramBytes = 0;

  const summary = (ok: boolean, extra: Partial<MigrationSummary>): MigrationSummary => ({
    ok,
    source: src.node,
    destination: dst.node,
    totalMs: elapsed(),
    downtimeMs: 0,
    guestDowntimeMs: null,
    rounds,
    bytesSent,
    pagesSent,
    zeroPages,
    throughputMBps: bytesSent / 1e6 / Math.max(elapsed() / 1000, 1e-9),
    downtimeLimitMs: limit,
    expectedDowntimeMs: lastExpected,
    verified: false,
    guestContinued: null,
    devices: deviceReports,
    downtimeBreakdownMs: breakdown,
    ...extra,
  });

  try {
    // ---- setup: both agents, the guest, the hardware, the link
    await enter('setup');
    const [sState, dState] = await Promise.all([src.request('state', {}), dst.request('state', {})]);
    // A stopped (paused) guest moves too, in one pass, and arrives stopped.
    const stoppedGuest = sState.guest === 'paused' && !sState.dirtyLog;
    if (sState.guest !== 'running' && !stoppedGuest) throw new BaremigError('STATE', `${src.node} has no running guest (it is ${sState.guest})`);
    if (dState.guest === 'running' || dState.guest === 'paused' || dState.guest === 'incoming') throw new BaremigError('STATE', `${dst.node} is not idle: its guest is ${dState.guest}`);
    if (sState.ramBytes > dState.ramCapacity) throw new BaremigError('BAD_REQUEST', `${dst.node} has ${dState.ramCapacity} bytes of RAM, the guest needs ${sState.ramBytes}`);
    ramBytes = sState.ramBytes;
    const devicePlan = planDevices(sState.devices, dState.devices);
    // Round-trip time, for the downtime estimate.
    const r0 = performance.now();
    await Promise.all([src.request('state', {}), dst.request('state', {})]);
    const rttMs = performance.now() - r0;
    const prep = await dst.request('prepareIncoming', { ramBytes, devices: devicePlan.map((d) => d.src.kind) });
    dstPrepared = true;
    const addr = p.peerAddress ? p.peerAddress(p.dstDataHost, prep.port) : { host: p.dstDataHost, port: prep.port };
    const peer = { host: addr.host, port: addr.port, token: prep.token };
    const stream = (which: 'all' | 'dirty') =>
      interruptible(
        src.request('streamPages', o.bandwidth ? { which, peer, bandwidth: o.bandwidth } : { which, peer }, 600_000).catch((e: unknown) => {
          const err = asBaremigError(e);
          throw err.code === 'STREAM' ? new BaremigError('STREAM', `page stream ${src.node} → ${dst.node} failed: ${err.message}`) : err;
        }),
      );
    const deviceEstimateMs = restoreEstimateMs(devicePlan, rttMs);
    /** Reports the round in flight every 250 ms, so a long first pass does not look stuck. */
    const withStreamProgress = async <T>(running: Promise<T>, round: number, pagesToSend: number): Promise<T> => {
      let done = false;
      let wake: (() => void) | null = null;
      const poll = (async () => {
        while (!done) {
          // The wait ends early when the round does: the poll must never delay the next step.
          await new Promise<void>((r) => {
            wake = r;
            setTimeout(r, 250);
          });
          if (done) break;
          const st = await src.request('streamStatus', {}, 5000).catch(() => null);
          if (!st?.active || done) continue;
          emit({
            type: 'stream',
            round,
            pagesSent: st.pages,
            wireBytes: st.wireBytes,
            rateBps: (st.wireBytes / Math.max(st.ms, 1)) * 1000,
            totalBytesSent: bytesSent + st.wireBytes,
            progress: progress.update(bytesSent + st.wireBytes, Math.max(0, pagesToSend - st.pages) * PAGE),
            elapsedMs: elapsed(),
          });
        }
      })();
      try {
        return await running;
      } finally {
        done = true;
        (wake as (() => void) | null)?.();
        await poll;
      }
    };
    const stateBytes = 4096 * (1 + devicePlan.length);

    // ---- pre-copy
    await src.request('dirtyLogStart', {});
    let which: 'all' | 'dirty' = 'all';
    let streamBytes = 0;
    let streamMs = 0;
    const dirtyHistory: number[] = [];
    let remainingPages = ramBytes / PAGE;
    for (;;) {
      rounds++;
      await enter('precopy');
      const r = await withStreamProgress(stream(which), rounds, remainingPages);
      bytesSent += r.wireBytes;
      pagesSent += r.pages;
      zeroPages += r.zeroPages;
      streamBytes += r.wireBytes;
      streamMs += r.ms;
      // Warm the digest caches on both sides while the guest still runs, so
      // that verifying at pause costs only the last round's pages — before
      // the sync, so that the pages the guest dirties meanwhile are counted
      // in the estimate rather than surprising the final copy.
      await Promise.all([src.request('digest', {}, 600_000), dst.request('digest', {}, 600_000)]);
      const sync = await src.request('dirtyLogSync', {});
      const bandwidthBps = (streamBytes / Math.max(streamMs, 1)) * 1000;
      const dirtyRateBps = ((sync.dirtyPages * PAGE) / Math.max(sync.intervalMs, 1)) * 1000;
      remainingPages = sync.dirtyPages;
      dirtyHistory.push(sync.dirtyPages);
      lastExpected = expectedDowntimeMs({ dirtyPages: sync.dirtyPages, stateBytes, bandwidthBps, deviceRestoreMs: deviceEstimateMs, rttMs });
      emit({
        type: 'round',
        round: rounds,
        pagesSent: r.pages,
        zeroPages: r.zeroPages,
        wireBytes: r.wireBytes,
        roundMs: r.ms,
        dirtyPages: sync.dirtyPages,
        dirtyRateBps,
        bandwidthBps,
        expectedDowntimeMs: lastExpected,
        downtimeLimitMs: limit,
        progress: progress.update(bytesSent, remainingPages * PAGE),
        totalBytesSent: bytesSent,
        elapsedMs: elapsed(),
      });
      if (o.forceSignal?.aborted) {
        limit = Math.max(limit, o.maxDowntimeLimitMs);
        emit({ type: 'policy', action: 'switch-over', reason: `forced: expected downtime ${lastExpected.toFixed(0)} ms, limit raised to ${limit.toFixed(0)} ms`, downtimeLimitMs: limit, elapsedMs: elapsed() });
        break;
      }
      const d = decide({ round: rounds, maxRounds: o.maxRounds, expectedDowntimeMs: lastExpected, downtimeLimitMs: limit, dirtyRateBps, bandwidthBps: o.bandwidth ? Math.min(bandwidthBps, o.bandwidth) : bandwidthBps, dirtyHistory, onStall: o.onStall, limitStepFactor: o.limitStepFactor, maxDowntimeLimitMs: o.maxDowntimeLimitMs });
      if (d.action === 'stop') break;
      if (d.action === 'abort') {
        emit({ type: 'policy', action: 'abort', reason: d.reason, downtimeLimitMs: limit, elapsedMs: elapsed() });
        throw new BaremigError('NOT_CONVERGING', d.reason, { rounds, expectedDowntimeMs: lastExpected, downtimeLimitMs: limit });
      }
      if (d.action === 'raise-limit') {
        limit = d.newLimitMs;
        emit({ type: 'policy', action: 'raise-limit', reason: d.reason, downtimeLimitMs: limit, elapsedMs: elapsed() });
        if (lastExpected <= limit) break;
      }
      which = 'dirty';
    }

    // ---- stop-and-copy
    await enter('stop');
    const tPause = performance.now();
    const paused = stoppedGuest ? { guestNs: 0, wallMs: 0 } : await src.request('pause', {});
    srcPaused = !stoppedGuest;
    pauseAt = tPause;
    const observer = stoppedGuest ? undefined : p.observer;
    // The observer reads the paused source (a measurement): beside the final copy, not before it.
    const observed = observer ? observer.atPause(src, paused.guestNs) : Promise.resolve();
    observed.catch(() => undefined); // judged with the final copy below
    breakdown.pause = performance.now() - tPause;

    await enter('final-copy');
    let t = performance.now();
    // The last dirty pages and the device capture go in parallel: both only
    // read the paused source. Whatever a capture probe writes to guest RAM
    // (a NIC's DMA, bytes put back) is in the dirty log and re-sent below.
    const [copied, capturedNow, observedNow] = await Promise.allSettled([
      (async () => {
        await src.request('dirtyLogSync', {});
        return stream('dirty');
      })(),
      captureDevices(src, devicePlan, dst).then((c) => (captured = c)),
      observed,
    ]);
    if (copied.status === 'rejected') throw copied.reason;
    if (capturedNow.status === 'rejected') throw capturedNow.reason;
    if (observedNow.status === 'rejected') throw observedNow.reason;
    const fin = copied.value;
    rounds++;
    bytesSent += fin.wireBytes;
    pagesSent += fin.pages;
    zeroPages += fin.zeroPages;
    breakdown.finalCopy = performance.now() - t;
    progress.update(bytesSent, 0);

    await enter('devices');
    t = performance.now();
    if (devicePlan.length) {
      const late = await src.request('dirtyLogSync', {});
      if (late.dirtyPages > 0) {
        const r = await stream('dirty');
        bytesSent += r.wireBytes;
        pagesSent += r.pages;
        zeroPages += r.zeroPages;
      }
    }
    // The memory digests are taken here, before the destination's devices
    // are restored: from then on a restored NIC takes frames from the wire
    // into guest RAM — the guest's new state, not a copy error (broadcasts
    // reach it anyway, and its announcement moves the guest's traffic there
    // before the guest runs). Compared in 'verify'.
    const tDigest = performance.now();
    const [ds, dd] = await Promise.all([src.request('digest', {}, 600_000), dst.request('digest', {}, 600_000)]);
    const digestMs = performance.now() - tDigest;
    // The paused vCPU does not change: fetch it while the destination restores its devices.
    const vcpuAtPause = src.request('vcpuGet', {});
    vcpuAtPause.catch(() => undefined); // awaited below; a failure meanwhile must not go unhandled
    deviceReports = await restoreDevices(dst, captured);
    for (const r of deviceReports) emit({ type: 'device', ...r });
    breakdown.devices = performance.now() - t - digestMs;

    await enter('vcpu');
    t = performance.now();
    const v = await vcpuAtPause;
    await dst.request('vcpuSet', { vcpu: v.vcpu, wallMs: v.wallMs });
    breakdown.vcpu = performance.now() - t;

    await enter('verify');
    t = performance.now();
    breakdown.verify = performance.now() - t + digestMs;
    if (ds.hex !== dd.hex) throw new BaremigError('VERIFY', `destination memory differs from the source's at pause (digest ${dd.hex.slice(0, 16)}… vs ${ds.hex.slice(0, 16)}…)`);

    // ---- resume on the destination: the point of no return
    await enter('resume');
    t = performance.now();
    try {
      await dst.request('resume', stoppedGuest ? { run: false } : {});
    } catch (e) {
      const err = asBaremigError(e);
      // The destination answered with a refusal, or the request never left: it did not run.
      if (err.code === 'STATE' || err.code === 'BAD_REQUEST' || err.details?.sent === false) throw err;
      // No answer: the destination may or may not run. Keep the source paused.
      throw new BaremigError('UNCERTAIN', `lost ${dst.node} while it was resuming: it may be running. The guest on ${src.node} stays paused so that only one copy can run; check ${dst.node} (baremig nodes) before resuming anything. Cause: ${err.message}`);
    }
    const downtimeMs = performance.now() - pauseAt;
    breakdown.resume = performance.now() - t;
    progress.bump(1);

    await enter('commit');
    try {
      await src.request('release', {});
    } catch (e) {
      emit({ type: 'warning', message: `the guest runs on ${dst.node}; releasing its paused copy on ${src.node} failed (${(e as Error).message}) — it stays paused and must not be resumed`, elapsedMs: elapsed() });
    }
    let guestDowntimeMs: number | null = null;
    let guestContinued: boolean | null = null;
    if (observer) {
      const obs = await observer.afterResume(dst).catch(() => null);
      if (obs) {
        guestDowntimeMs = obs.guestDowntimeMs;
        guestContinued = obs.continued;
      }
    }
    return summary(true, { downtimeMs, guestDowntimeMs, guestContinued, verified: true, totalMs: elapsed(), expectedDowntimeMs: lastExpected, devices: deviceReports });
  } catch (e) {
    const err = asBaremigError(e);
    const failedIn = phase;
    if (err.code === 'UNCERTAIN') {
      return summary(false, { error: { code: err.code, message: err.message, phase: failedIn, sourceRunning: false } });
    }
    // ---- rollback: the destination never ran, so the source may run again.
    phase = 'rollback';
    emit({ type: 'phase', phase: 'rollback', elapsedMs: elapsed(), progress: progress.current });
    if (dstPrepared) await dst.request('release', {}, 5000).catch(() => undefined);
    let sourceRunning = false;
    let rollbackNote = '';
    try {
      if (srcPaused) {
        if (captured.length) await rollbackDevices(src, captured);
        await src.request('dirtyLogStop', {}, 5000);
        await src.request('resume', {}, 5000);
      } else {
        await src.request('dirtyLogStop', {}, 5000).catch(() => undefined);
      }
      const st = await src.request('state', {}, 5000);
      sourceRunning = st.guest === 'running';
    } catch (re) {
      rollbackNote = ` Rolling back on ${src.node} failed too: ${(re as Error).message}.`;
    }
    emit({ type: 'rollback', fromPhase: failedIn, reason: err.message, sourceRunning, elapsedMs: elapsed() });
    return summary(false, { error: { code: err.code, message: `${err.message}${rollbackNote}`, phase: failedIn, sourceRunning } });
  } finally {
    if (deadline) clearTimeout(deadline);
    o.signal?.removeEventListener('abort', onCancel);
  }
}
