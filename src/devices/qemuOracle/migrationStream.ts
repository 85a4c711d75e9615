/**
 * Reader for QEMU's migration stream (the bytes `migrate "exec:cat > FILE"`
 * writes), enough to decode the non-iterable device sections by name.
 *
 * Layout, as QEMU's migration/savevm.c and migration/vmstate.c write it:
 *
 *   be32 magic "QEVM", be32 version 3
 *   CONFIGURATION (0x07) section, iterable sections (RAM ...): skipped here
 *   per device:  0x04 SECTION_FULL, be32 section_id, u8 len, idstr,
 *                be32 instance_id, be32 version_id, field bytes,
 *                [0x05 SUBSECTION, u8 len, name, be32 version, field bytes]*,
 *                0x7e SECTION_FOOTER, be32 section_id   (footer: modern machines)
 *   0x00 EOF
 *   0x06 VMDESCRIPTION, be32 length, JSON
 *
 * The JSON ("vmdesc") lists every device section in stream order with its
 * fields: name, type, size in bytes, and for arrays either `array_len` (one
 * entry stands for all elements, "compressed") or one entry per element with
 * `index`; structs nest as `struct: {vmsd_name, version, fields,
 * subsections?}`. Multi-byte values are big-endian.
 *
 * RAM sections are not parsed (their format changes between QEMU versions);
 * a device section is instead found by its exact header bytes and accepted
 * only if its decoded length lands exactly on its own footer, which carries
 * the same section id as its header.
 */
import { BaremigError } from '../../errors.js';

export const QEMU_VM_FILE_MAGIC = 0x5145564d; // "QEVM"
export const QEMU_VM_FILE_VERSION = 3;

const QEMU_VM_EOF = 0x00;
const QEMU_VM_SECTION_FULL = 0x04;
const QEMU_VM_SUBSECTION = 0x05;
const QEMU_VM_VMDESCRIPTION = 0x06;
const QEMU_VM_SECTION_FOOTER = 0x7e;

/** One field as the vmdesc JSON describes it. */
export interface VmDescField {
  name: string;
  type: string;
  /** Bytes written for one element (for a struct: the whole struct). */
  size: number;
  /** Compressed array: this single entry describes `array_len` elements. */
  array_len?: number;
  /** Uncompressed array: this entry is element `index`. */
  index?: number;
  struct?: VmDescVmsd;
}

export interface VmDescVmsd {
  vmsd_name: string;
  version: number;
  fields?: VmDescField[];
  subsections?: VmDescVmsd[];
}

export interface VmDescDevice extends VmDescVmsd {
  name: string;
  instance_id: number;
  /** Present in some QEMU versions only. */
  section_id?: number;
}

export interface VmDesc {
  page_size?: number;
  devices: VmDescDevice[];
}

/** A decoded field: an integer, raw bytes (buffers), a struct, or an array of those. */
export type VmValue = number | Uint8Array | DecodedVmsd | VmValue[];

export interface DecodedVmsd {
  vmsd_name: string;
  version: number;
  fields: Record<string, VmValue>;
  subsections: Record<string, DecodedVmsd>;
}

export interface DecodedSection extends DecodedVmsd {
  idstr: string;
  instance_id: number;
  section_id: number;
  /** Offset of the SECTION_FULL byte in the stream. */
  offset: number;
}

function streamError(message: string, details?: Record<string, unknown>): BaremigError {
  return new BaremigError('DEVICE', `QEMU migration stream: ${message}`, details);
}

/** Thrown (as a BaremigError with details.incomplete) when the stream has no complete vmdesc yet. */
export function isIncompleteStreamError(e: unknown): boolean {
  return e instanceof BaremigError && e.details?.['incomplete'] === true;
}

const be32 = (b: Uint8Array, o: number): number => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

/**
 * A parsed stream: header checked, vmdesc found and parsed. Device sections
 * are decoded on demand with `section()`.
 */
export class MigrationStream {
  readonly version: number;
  readonly vmdesc: VmDesc;
  /** Offset of the EOF byte that precedes the vmdesc; device sections lie before it. */
  readonly devicesEnd: number;

  constructor(readonly bytes: Uint8Array) {
    if (bytes.length < 8) throw streamError(`${bytes.length} bytes, shorter than the header`, { incomplete: true });
    const magic = be32(bytes, 0);
    if (magic !== QEMU_VM_FILE_MAGIC) throw streamError(`bad magic 0x${magic.toString(16)} (want QEVM)`);
    this.version = be32(bytes, 4);
    if (this.version !== QEMU_VM_FILE_VERSION) throw streamError(`unsupported stream version ${this.version} (want 3)`);
    const { eofOffset, json } = locateVmdesc(bytes);
    this.devicesEnd = eofOffset;
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch (e) {
      throw streamError(`vmdesc is not JSON: ${(e as Error).message}`);
    }
    if (!isRecord(parsed) || !Array.isArray(parsed['devices'])) throw streamError('vmdesc has no devices array');
    this.vmdesc = parsed as unknown as VmDesc;
  }

  /** The vmdesc entry of a device section, or undefined if the stream has none. */
  describe(idstr: string, instanceId: number): VmDescDevice | undefined {
    return this.vmdesc.devices.find((d) => d.name === idstr && d.instance_id === instanceId);
  }

  /** Decodes device section `idstr` instance `instanceId` by its vmdesc. */
  section(idstr: string, instanceId: number): DecodedSection {
    const desc = this.describe(idstr, instanceId);
    if (!desc) {
      const names = this.vmdesc.devices.map((d) => `${d.name}#${d.instance_id}`).join(', ');
      throw streamError(`no section ${idstr} instance ${instanceId} in vmdesc (has: ${names})`);
    }
    if (!desc.fields) throw streamError(`section ${idstr} has no field description (old-style save handler)`);
    const pattern = sectionHeaderTail(idstr, instanceId, desc.version);
    let found: DecodedSection | undefined;
    const failures: string[] = [];
    // Device sections come last, after RAM: take the last candidate that decodes cleanly.
    for (let p = lastIndexOf(this.bytes, pattern, this.devicesEnd); p >= 0; p = p > 0 ? lastIndexOf(this.bytes, pattern, p - 1) : -1) {
      const start = p - 5;
      if (start < 8 || this.bytes[start] !== QEMU_VM_SECTION_FULL) continue;
      const sectionId = be32(this.bytes, start + 1);
      if (desc.section_id !== undefined && desc.section_id !== sectionId) continue;
      try {
        const reader = new Reader(this.bytes, p + pattern.length, this.devicesEnd);
        const decoded = decodeVmsd(reader, desc, `${idstr}#${instanceId}`);
        checkSectionEnd(this.bytes, reader.pos, sectionId, this.devicesEnd);
        found = { ...decoded, idstr, instance_id: instanceId, section_id: sectionId, offset: start };
        break;
      } catch (e) {
        failures.push(`@${start}: ${(e as Error).message}`);
      }
    }
    if (!found) {
      throw streamError(`section ${idstr} instance ${instanceId} v${desc.version} not found in the stream`, { failures });
    }
    return found;
  }
}

export function parseMigrationStream(bytes: Uint8Array): MigrationStream {
  return new MigrationStream(bytes);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Finds `EOF, VMDESCRIPTION, be32 len, JSON` ending exactly at the end of the
 * stream. A stream still being written has none: that error says `incomplete`.
 */
function locateVmdesc(bytes: Uint8Array): { eofOffset: number; json: string } {
  // The JSON is ASCII and never contains a 0x06 byte, so scanning back for
  // the marker whose length field matches the tail finds it unambiguously.
  for (let p = bytes.length - 6; p >= 9; p--) {
    if (bytes[p] !== QEMU_VM_VMDESCRIPTION || bytes[p + 5] !== 0x7b /* { */) continue;
    const len = be32(bytes, p + 1);
    if (p + 5 + len !== bytes.length) continue;
    if (bytes[p - 1] !== QEMU_VM_EOF) continue;
    return { eofOffset: p - 1, json: Buffer.from(bytes.buffer, bytes.byteOffset + p + 5, len).toString('utf8') };
  }
  throw streamError(`no complete vmdesc at the end of ${bytes.length} bytes (stream incomplete or vmdesc suppressed)`, {
    incomplete: true,
  });
}

function sectionHeaderTail(idstr: string, instanceId: number, versionId: number): Uint8Array {
  const name = Buffer.from(idstr, 'latin1');
  if (name.length > 255) throw streamError(`idstr too long: ${idstr}`);
  const out = new Uint8Array(1 + name.length + 8);
  out[0] = name.length;
  out.set(name, 1);
  const dv = new DataView(out.buffer);
  dv.setUint32(1 + name.length, instanceId >>> 0);
  dv.setUint32(5 + name.length, versionId >>> 0);
  return out;
}

/** Last index of `pat` in `hay` starting at or before `from`, or -1. */
function lastIndexOf(hay: Uint8Array, pat: Uint8Array, from: number): number {
  return Buffer.from(hay.buffer, hay.byteOffset, hay.length).lastIndexOf(pat, from);
}

function checkSectionEnd(bytes: Uint8Array, pos: number, sectionId: number, limit: number): void {
  if (pos >= limit) {
    if (pos === limit) return; // last section without footer, right before EOF
    throw new Error(`decoded past the device area (${pos} > ${limit})`);
  }
  const next = bytes[pos];
  if (next === QEMU_VM_SECTION_FOOTER) {
    if (pos + 5 > limit) throw new Error('truncated footer');
    const sid = be32(bytes, pos + 1);
    if (sid !== sectionId) throw new Error(`footer section id ${sid} != header ${sectionId}`);
    return;
  }
  // Machines with send-section-footer=off: the next section or EOF must follow.
  if (next !== QEMU_VM_SECTION_FULL && next !== QEMU_VM_EOF) {
    throw new Error(`byte 0x${next!.toString(16)} after the fields is neither a footer nor a section start`);
  }
}

class Reader {
  constructor(
    readonly bytes: Uint8Array,
    public pos: number,
    readonly limit: number,
  ) {}

  take(n: number, what: string): Uint8Array {
    if (n < 0 || this.pos + n > this.limit) throw new Error(`${what}: needs ${n} bytes at ${this.pos}, area ends at ${this.limit}`);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  u8(what: string): number {
    return this.take(1, what)[0]!;
  }
}

const INT_TYPE = /^(u?)int(8|16|32|64)(?:_equal)?$/;

/** Decodes one scalar of `size` bytes by vmdesc type name; unknown types stay raw bytes. */
function decodeScalar(raw: Uint8Array, type: string, what: string): number | Uint8Array {
  const m = INT_TYPE.exec(type);
  if (m) {
    const bits = Number(m[2]);
    if (raw.length * 8 !== bits) return raw.slice();
    let v = 0n;
    for (const b of raw) v = (v << 8n) | BigInt(b);
    if (m[1] !== 'u' && raw.length > 0 && (raw[0]! & 0x80) !== 0) v -= 1n << BigInt(bits);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new Error(`${what}: value ${v} does not fit a JS number exactly`);
    }
    return Number(v);
  }
  if (type === 'bool' && raw.length === 1) return raw[0]!;
  return raw.slice();
}

function decodeFieldElement(r: Reader, f: VmDescField, what: string): VmValue {
  if (f.struct) {
    const start = r.pos;
    const value = decodeVmsd(r, f.struct, what);
    if (r.pos - start !== f.size) throw new Error(`${what}: struct decoded to ${r.pos - start} bytes, vmdesc says ${f.size}`);
    return value;
  }
  return decodeScalar(r.take(f.size, what), f.type, what);
}

function decodeVmsd(r: Reader, d: VmDescVmsd, path: string): DecodedVmsd {
  const fields: Record<string, VmValue> = {};
  for (const f of d.fields ?? []) {
    if (typeof f.name !== 'string' || typeof f.size !== 'number') throw new Error(`${path}: malformed field description`);
    const what = `${path}.${f.name}`;
    if (f.array_len !== undefined) {
      const arr: VmValue[] = [];
      for (let i = 0; i < f.array_len; i++) arr.push(decodeFieldElement(r, f, `${what}[${i}]`));
      fields[f.name] = arr;
    } else if (f.index !== undefined) {
      const existing = fields[f.name];
      const arr = Array.isArray(existing) ? existing : [];
      if (arr.length !== f.index) throw new Error(`${what}: element ${f.index} out of order`);
      arr.push(decodeFieldElement(r, f, `${what}[${f.index}]`));
      fields[f.name] = arr;
    } else {
      fields[f.name] = decodeFieldElement(r, f, what);
    }
  }
  const subsections: Record<string, DecodedVmsd> = {};
  for (const sub of d.subsections ?? []) {
    const marker = r.u8(`${path} subsection marker`);
    if (marker !== QEMU_VM_SUBSECTION) throw new Error(`${path}: expected subsection ${sub.vmsd_name}, got byte 0x${marker.toString(16)}`);
    const len = r.u8(`${path} subsection name length`);
    const name = Buffer.from(r.take(len, `${path} subsection name`)).toString('latin1');
    if (name !== sub.vmsd_name) throw new Error(`${path}: subsection ${name} where vmdesc has ${sub.vmsd_name}`);
    const version = be32(r.take(4, `${path} subsection version`), 0);
    if (version !== sub.version) throw new Error(`${path}: subsection ${name} version ${version} != vmdesc ${sub.version}`);
    subsections[name] = decodeVmsd(r, sub, `${path}/${name}`);
  }
  return { vmsd_name: d.vmsd_name, version: d.version, fields, subsections };
}
