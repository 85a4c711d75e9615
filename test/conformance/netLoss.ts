/**
 * Frame loss in the namespace migration network (`up.sh --loss PCT`): netem on
 * the bridge ports where the kernel has sch_netem, otherwise an nftables rule
 * in the bridge's forward hook (`ether type 0x88b5 numgen random … drop`).
 * Either way the frames are lost between the endpoints, not inside them.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { HYPERVISOR } from './targets.js';

export interface NetLoss {
  mode: 'netem' | 'nftables' | 'none';
  /** Frames subject to the loss (nftables: EtherType 0x88b5 frames the bridge forwarded). */
  frames: number;
  dropped: number;
}

/** Why `up.sh --loss` cannot work here (neither netem nor nft), or null. */
export function networkLossUnavailable(): string | null {
  const probe = `bmlp${process.pid % 1000}`;
  try {
    execFileSync(join(HYPERVISOR, 'netns/up.sh'), [probe, '--nodes', '1', '--loss', '1'], { stdio: 'pipe' });
    return null;
  } catch (e) {
    const err = String((e as { stderr?: Buffer }).stderr ?? e).trim();
    return err.split('\n').pop() ?? 'up.sh --loss failed';
  } finally {
    execFileSync(join(HYPERVISOR, 'netns/down.sh'), [probe], { stdio: 'ignore' });
  }
}

/** The loss counters of the network `prefix` (hypervisor/netns/loss.sh). */
export function networkLoss(prefix: string): NetLoss {
  return JSON.parse(execFileSync(join(HYPERVISOR, 'netns/loss.sh'), [prefix], { encoding: 'utf8' })) as NetLoss;
}
