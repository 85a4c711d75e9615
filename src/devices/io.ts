/**
 * The contract between device reconstructors and a node.
 *
 * A reconstructor may touch a node only through what real hardware and the
 * thin hypervisor offer (DESIGN rule 2): port I/O, MMIO, guest memory, the
 * hypervisor's shadow of intercepted writes, waiting on a register, and
 * sending a frame out of a NIC. Everything is expressed as an IoProgram, a
 * small serializable list of operations that the agent runs locally, so that
 * a whole restore costs one round trip of downtime.
 */

export type AccessSize = 1 | 2 | 4;

export type IoOp =
  /** Port input; the value read is appended to IoResult.reads. */
  | { op: 'in'; port: number; size: AccessSize }
  | { op: 'out'; port: number; size: AccessSize; value: number }
  /** MMIO read at a guest-physical address (BAR base + offset); appended to reads. */
  | { op: 'mmioRead'; addr: number; size: AccessSize }
  | { op: 'mmioWrite'; addr: number; size: AccessSize; value: number }
  /** Guest memory read (DMA-visible RAM); the bytes are appended to IoResult.reads. */
  | { op: 'memRead'; addr: number; len: number }
  | { op: 'memWrite'; addr: number; data: Uint8Array }
  /**
   * Poll a register until (value & mask) === expect, or fail the program after
   * timeoutUs. Models "poll until the self-clearing reset bit drops" etc.
   */
  | { op: 'waitUntil'; space: 'io' | 'mmio'; addr: number; size: AccessSize; mask: number; expect: number; timeoutUs: number }
  /** Busy time on the node: lets device timers (PHY, PIT) advance. */
  | { op: 'delay'; us: number }
  /**
   * Send a raw Ethernet frame to the device identified by `device` as if it
   * came from the wire (what a peer node or a loopback plug would do). Used to
   * advance a NIC's hidden RX index with dummy frames that reach no peer.
   */
  | { op: 'injectFrame'; device: string; frame: Uint8Array };

export type IoProgram = IoOp[];

export interface IoResult {
  /** One entry per reading op (in, mmioRead, memRead), in program order. */
  reads: Array<number | Uint8Array>;
  /** Wall time the agent spent running the program, microseconds. */
  elapsedUs: number;
}

/** Per-device shadow state the hypervisor keeps of intercepted writes. */
export type ShadowLog = Record<string, unknown>;

/** What a reconstructor may use on one node. Every call may cross the network. */
export interface DeviceAccess {
  run(program: IoProgram): Promise<IoResult>;
  shadow(): Promise<ShadowLog>;
}

export interface Reconstructor<State> {
  readonly kind: string;
  /** Guest paused. Reads only what hardware shows; may probe. */
  capture(src: DeviceAccess): Promise<State>;
  /**
   * Optional reads on the destination that need nothing captured (e.g. the
   * NIC's PHY and link partner). The engine runs them beside the capture, off
   * the critical path, and hands the result to restore; restore does them
   * itself when given nothing.
   */
  prepare?(dst: DeviceAccess): Promise<unknown>;
  /** Destination device freshly reset; brings it to the captured hidden state. */
  restore(dst: DeviceAccess, state: State, prepared?: unknown): Promise<RestoreReport>;
  /** Undo side effects of capture probes on the source, before the source resumes. */
  rollback?(src: DeviceAccess, state: State): Promise<void>;
}

export interface RestoreReport {
  /** Number of IoProgram runs (agent round trips) the restore took. */
  programs: number;
  /** Operations executed across those programs. */
  ops: number;
  /** Time spent inside the agent, microseconds. */
  elapsedUs: number;
  /** Device-specific figures, e.g. { dummyFrames: 17 }. */
  extra?: Record<string, number>;
}

/** Simulator device models: what the guest and the agent can do, plus a test oracle. */
export interface DeviceModel<Internal> {
  inspect(): Internal;
}
