import { BaremigError, asBaremigError } from '../errors.js';

/** Exit codes: 0 done; 1 failed (state unchanged or rolled back); 2 bad usage or nodes file; 4 uncertain (operator must look). */
export function exitCodeFor(e: BaremigError): number {
  if (e.code === 'USAGE' || e.code === 'INVENTORY' || e.code === 'UNKNOWN_NODE') return 2;
  if (e.code === 'UNCERTAIN') return 4;
  return 1;
}

export interface Out {
  json: boolean;
  /** Human lines (stderr when --json so stdout stays machine-readable). */
  info(line: string): void;
  /** The command's result: one JSON object with --json, else the human text. */
  result(obj: unknown, human: string): void;
}

export function makeOut(json: boolean): Out {
  return {
    json,
    info(line) {
      if (!json) process.stdout.write(`${line}\n`);
    },
    result(obj, human) {
      if (json) process.stdout.write(`${JSON.stringify(obj, bigintSafe)}\n`);
      else process.stdout.write(`${human}\n`);
    },
  };
}

export function bigintSafe(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

/** Prints a failure as one actionable line (or a JSON object) and sets the exit code. */
export function reportError(e: unknown, json: boolean): number {
  const err = asBaremigError(e);
  if (json) process.stdout.write(`${JSON.stringify({ ok: false, error: err.toJSON() })}\n`);
  else process.stderr.write(`baremig: ${err.message} [${err.code}]\n`);
  return exitCodeFor(err);
}
