import type { GuestRunState } from '../protocol/messages.js';

/**
 * Where is a guest whose migration's outcome the journal does not know?
 * That happens when the coordinator crashed with the migration in flight
 * (the agents may have finished it: "migrated, but no 'completed' line"),
 * or when a migration ended UNCERTAIN. The agents are asked, and the answer
 * decided here, purely, by the one-running-copy rule: once the destination
 * ran, the source never runs again; the source may resume only if the
 * destination never ran (a destination that ran is still running: agents
 * refuse to release a running guest).
 */

export type Seen = { reachable: false } | { reachable: true; guest: GuestRunState };

export interface Reconciliation {
  /** The node the guest runs on after `action`, or null if it cannot be told. */
  found: string | null;
  /**
   * resume-source: the destination never ran; resume the paused source.
   * release-source: the guest runs on the destination; release the paused copy.
   * wait: a transient state (an incoming guest whose coordinator just died); ask again.
   */
  action: 'none' | 'resume-source' | 'release-source' | 'wait';
  /** False: nobody should touch this guest until an operator has looked. */
  certain: boolean;
  detail: string;
}

const show = (s: Seen) => (s.reachable ? s.guest : 'unreachable');

export function reconcile(source: string, destination: string, src: Seen, dst: Seen, finalLook = false): Reconciliation {
  const both = `${source} ${show(src)}, ${destination} ${show(dst)}`;
  const sG = src.reachable ? src.guest : null;
  const dG = dst.reachable ? dst.guest : null;
  if (sG === 'running') {
    // The engine never resumes a source after the destination ran: the guest is here.
    return { found: source, action: 'none', certain: true, detail: dG === 'running' ? `${both}: the guest never left ${source} (${destination} runs some other guest)` : `${both}: the migration did not finish; the guest runs on ${source}` };
  }
  if (dG === 'running') {
    if (sG === 'paused') return { found: destination, action: 'release-source', certain: true, detail: `${both}: the migration finished on the agents; releasing the paused copy on ${source}` };
    return { found: destination, action: 'none', certain: true, detail: `${both}: the migration finished on the agents` };
  }
  if (dG === 'incoming' && !finalLook) return { found: null, action: 'wait', certain: false, detail: `${both}: ${destination} is still receiving` };
  if (sG === 'paused') {
    if (dG === 'none' || dG === 'released') {
      return { found: source, action: 'resume-source', certain: true, detail: `${both}: ${destination} never ran the guest; resuming it on ${source}` };
    }
    return { found: null, action: 'none', certain: false, detail: `${both}: ${destination} may have run the guest; the paused copy on ${source} stays paused — check both nodes ('baremig nodes') before resuming anything` };
  }
  if (!src.reachable) return { found: null, action: 'none', certain: false, detail: `${both}: the guest is not running on ${destination}, and ${source} does not answer` };
  return { found: null, action: 'none', certain: false, detail: `${both}: the guest runs on neither node` };
}
