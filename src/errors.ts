/**
 * Every failure baremig reports has a stable code (for automation) and a
 * message a person can act on. Codes are part of the CLI's --json contract:
 * add new ones, never rename.
 */
export type BaremigErrorCode =
  | 'USAGE' // wrong command-line arguments
  | 'INVENTORY' // nodes file missing or malformed
  | 'UNKNOWN_NODE' // a node name the nodes file does not list
  | 'AGENT_UNREACHABLE' // could not connect to / lost the agent
  | 'AUTH' // wrong cluster key, failed challenge
  | 'PROTOCOL' // malformed, hostile or unexpected protocol message
  | 'VERSION' // agent speaks another protocol version
  | 'BAD_REQUEST' // well-formed request the agent refuses (range, state)
  | 'STATE' // operation not allowed in the node's current state
  | 'NOT_CONVERGING' // pre-copy cannot reach the downtime limit
  | 'STREAM' // agent-to-agent page stream failed
  | 'VERIFY' // destination memory digest differs from the source's
  | 'DEVICE' // a device could not be captured or restored
  | 'TIMEOUT' // an operation exceeded its time limit
  | 'CANCELLED' // the operator cancelled
  | 'UNCERTAIN' // cannot tell whether the destination runs: source kept paused
  | 'CORDONED' // the node is cordoned (drain): no migration may target it
  | 'INTERNAL';

export class BaremigError extends Error {
  override readonly name = 'BaremigError';
  constructor(
    readonly code: BaremigErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }

  toJSON(): { code: BaremigErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message };
  }
}

export function isBaremigError(e: unknown, code?: BaremigErrorCode): e is BaremigError {
  return e instanceof BaremigError && (code === undefined || e.code === code);
}

/** Wrap anything thrown into a BaremigError, keeping a BaremigError as is. */
export function asBaremigError(e: unknown, fallback: BaremigErrorCode = 'INTERNAL'): BaremigError {
  if (e instanceof BaremigError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new BaremigError(fallback, msg);
}
