/** Defaults of the experiments (kept apart so that the CLI loads no plotting code until an experiment runs). */
export const IPERF_DOWNTIME_DEFAULTS = {
  dirtyRateBytesPerSec: 4e6,
  streamBitsPerSec: 10e6,
  datagramBytes: 1000,
  /** The target of issue 6: ten times shorter than the original 0.7 s. */
  downtimeLimitMs: 70,
  warmupMs: 5000,
  afterMs: 3000,
  iperfIntervalS: 0.1,
  pingIntervalMs: 10,
  seed: 42,
};
