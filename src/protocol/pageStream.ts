/**
 * Agent-to-agent page stream: a plain TCP byte stream (no masking, no
 * message framing beyond this), so pages cost 4 bytes of index and zero
 * pages only that. Sent and received natively (native/pageStreamIo.c).
 *
 *   opening   'BMPS' u8 version u8[3] 0, token[32]            (sender → receiver, once)
 *   frame     u8 type, u8 0, u16 n, u32 arg                   (8 bytes)
 *     BATCH n = pages (1..256), arg = 0; then n u32 entries (page index in
 *           ascending order, bit 31 set = all-zero page), then the non-zero
 *           pages' 4096 bytes each, in entry order (the receiver checks every
 *           entry before it stores any)
 *     RAW   arg = page index, followed by 4096 bytes   (single-page frames, as the
 *     ZERO  arg = page index                            native agent's link streams use)
 *     END   arg = pages since the previous END (a round's count)
 *   ack       u8 ACK, u8 0, u16 0, u32 count                  (receiver → sender, per END)
 *     NAK  arg = error code: the receiver refused the stream
 */
export const STREAM_MAGIC = 0x53504d42; // 'BMPS' little-endian
/** 2 added BATCH frames; the native agent's link streams (hypervisor/core/agent.c) speak version 1: RAW, ZERO and END only. */
export const STREAM_VERSION = 2;
export const OPENING_BYTES = 40;
export const FRAME_HEADER = 8;
export const enum FrameType {
  Raw = 1,
  Zero = 2,
  End = 3,
  Ack = 4,
  Nak = 5,
  Batch = 6,
}
export const BATCH_MAX_PAGES = 256;
export const BATCH_ZERO = 0x80000000;
export const NAK_BAD_PAGE = 1;
export const NAK_BAD_FRAME = 2;

export function opening(token: Uint8Array): Buffer {
  const b = Buffer.alloc(OPENING_BYTES);
  b.writeUInt32LE(STREAM_MAGIC, 0);
  b.writeUInt8(STREAM_VERSION, 4);
  b.set(token, 8);
  return b;
}

export function ackFrame(type: FrameType.Ack | FrameType.Nak, arg: number): Buffer {
  const b = Buffer.alloc(FRAME_HEADER);
  b[0] = type;
  b.writeUInt32LE(arg >>> 0, 4);
  return b;
}
