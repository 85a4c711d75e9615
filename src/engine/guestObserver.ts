import type { AgentClient } from '../protocol/client.js';

/**
 * What the coordinator can learn about the guest from outside, where the
 * guest exposes something (the simulator's guest has a heartbeat in RAM). A
 * real OS exposes nothing: then there is no observer and the summary says
 * null rather than guessing.
 */
export interface GuestObservation {
  /** Largest gap the guest saw across the pause, ms. */
  guestDowntimeMs: number;
  /** The guest continued from exactly the migrated state (e.g. its checksum chain). */
  continued: boolean;
  detail?: string;
}

export interface GuestObserver {
  /** With the source paused: take whatever is needed to judge continuity. */
  atPause(src: AgentClient, pauseGuestNs: number): Promise<void>;
  /** After the destination has run a while. */
  afterResume(dst: AgentClient): Promise<GuestObservation | null>;
}
