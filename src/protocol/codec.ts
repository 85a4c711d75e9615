import { Packr } from 'msgpackr';
import { BaremigError } from '../errors.js';

/** Largest control message either side accepts (page data does not travel here). */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

// Records (msgpackr's shared-structure extension) are off: the native agent's
// decoder speaks plain msgpack. 64-bit integers decode as bigint so vCPU
// registers survive exactly; numbers above 2^32 travel as float64.
const packr = new Packr({ useRecords: false, int64AsType: 'bigint', mapsAsObjects: true, moreTypes: false });

export function encode(msg: unknown): Buffer {
  return packr.pack(msg);
}

/** Decodes one message; anything that is not a msgpack map with a string `t` is a PROTOCOL error. */
export function decode(bytes: Uint8Array): Record<string, unknown> {
  if (bytes.length > MAX_MESSAGE_BYTES) throw new BaremigError('PROTOCOL', `message of ${bytes.length} bytes exceeds ${MAX_MESSAGE_BYTES}`);
  let v: unknown;
  try {
    v = packr.unpack(bytes);
  } catch (e) {
    throw new BaremigError('PROTOCOL', `undecodable message: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) throw new BaremigError('PROTOCOL', 'message is not a map');
  const m = v as Record<string, unknown>;
  if (typeof m.t !== 'string') throw new BaremigError('PROTOCOL', 'message has no string field t');
  return m;
}
