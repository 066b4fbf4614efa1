/**
 * Frames the server sends (RFC 6455 §5.2): unmasked, FIN set. Data frames
 * go out as a head and the payload in one writev, or as one buffer when the
 * reader left room for the head or the payload is small; control frames of
 * the server's own as one buffer.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * The head of an unmasked server frame with FIN set.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { OP_BINARY } from "./frames.ts";
 * import { frameHead } from "./server_frames.ts";
 *
 * assert.deepEqual(frameHead(OP_BINARY, 3), new Uint8Array([0x82, 3]));
 * ```
 */
export function frameHead(opcode: number, length: number): Uint8Array {
  if (length < 126) return new Uint8Array([0x80 | opcode, length]);
  if (length < 65536) return new Uint8Array([0x80 | opcode, 126, length >> 8, length & 0xff]);
  // Byte by byte: a DataView per frame shows in profiles of 64 KiB messages.
  const head = new Uint8Array(10);
  const high = Math.floor(length / 2 ** 32);
  head[0] = 0x80 | opcode;
  head[1] = 127;
  head[2] = high >>> 24;
  head[3] = high >>> 16;
  head[4] = high >>> 8;
  head[5] = high;
  head[6] = length >>> 24;
  head[7] = length >>> 16;
  head[8] = length >>> 8;
  head[9] = length;
  return head;
}

/** The longest head {@link frameHead} makes. */
export const HEAD_ROOM = 10;

/** Buffers handed on by {@link lendHeadRoom} whose spare bytes are still unused. */
const roomy = new WeakSet<ArrayBufferLike>();

/**
 * A zeroed buffer of `size` bytes with {@link HEAD_ROOM} spare bytes before
 * it, for a reader to fill. Once the reader hands a view of it on with
 * {@link lendHeadRoom}, {@link frameInPlace} can write the frame head there
 * and send head and payload as one buffer, without the copy that joining
 * two buffers costs where a runtime's writev concatenates them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { OP_BINARY } from "./frames.ts";
 * import { frameInPlace, lendHeadRoom, withHeadRoom } from "./server_frames.ts";
 *
 * const buf = withHeadRoom(8);
 * buf.set([1, 2, 3]);
 * const payload = lendHeadRoom(buf.subarray(0, 3));
 * assert.deepEqual(frameInPlace(OP_BINARY, payload), new Uint8Array([0x82, 3, 1, 2, 3]));
 * assert.equal(frameInPlace(OP_BINARY, payload), undefined); // the room is used once
 * ```
 */
export function withHeadRoom(size: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(HEAD_ROOM + size).subarray(HEAD_ROOM);
}

/**
 * Marks the room before `view` (from {@link withHeadRoom}, at its start) as
 * free for one frame head, and returns `view`. Only views handed on are
 * marked: an idle reader's buffer costs nothing here.
 */
export function lendHeadRoom<T extends Uint8Array>(view: T): T {
  if (view.byteOffset === HEAD_ROOM) roomy.add(view.buffer);
  return view;
}

/**
 * The whole frame for `payload` as one view, its head written into the spare
 * bytes before it, if `payload` was marked by {@link lendHeadRoom} and its
 * room is unused; otherwise undefined (send head and payload).
 */
export function frameInPlace(opcode: number, payload: Uint8Array): Uint8Array | undefined {
  if (payload.byteOffset !== HEAD_ROOM || !roomy.delete(payload.buffer)) return undefined;
  const head = frameHead(opcode, payload.length);
  const start = HEAD_ROOM - head.length;
  const frame = new Uint8Array(payload.buffer, start, head.length + payload.length);
  frame.set(head);
  return frame;
}

/**
 * Payloads up to this size go out as one buffer with their head: copying a
 * small payload costs less than a second write (a writev on Node and Deno).
 */
export const WHOLE_FRAME_MAX = 1024;

/**
 * A whole unmasked server frame in one buffer: one write, not two. For the
 * server's own control frames (payload at most 125 bytes) and for data
 * frames up to {@link WHOLE_FRAME_MAX} bytes; `payload` is below 65536 bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { OP_PONG } from "./frames.ts";
 * import { wholeFrame } from "./server_frames.ts";
 *
 * assert.deepEqual(wholeFrame(OP_PONG, new Uint8Array([7])), new Uint8Array([0x8a, 1, 7]));
 * ```
 */
export function wholeFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const at = n < 126 ? 2 : 4;
  const frame = new Uint8Array(at + n);
  frame[0] = 0x80 | opcode;
  if (n < 126) frame[1] = n;
  else {
    frame[1] = 126;
    frame[2] = n >> 8;
    frame[3] = n & 0xff;
  }
  frame.set(payload, at);
  return frame;
}

/**
 * A close frame's payload: the code, then the reason as UTF-8 cut to fit a
 * control frame. No code gives an empty payload.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { closePayload } from "./server_frames.ts";
 *
 * assert.deepEqual(closePayload(1000, "bye"), new Uint8Array([0x03, 0xe8, 0x62, 0x79, 0x65]));
 * ```
 */
export function closePayload(code?: number, reason = ""): Uint8Array {
  if (code === undefined) return new Uint8Array(0);
  const out = new Uint8Array(125);
  new DataView(out.buffer).setUint16(0, code);
  const { written } = encoder.encodeInto(reason, out.subarray(2));
  return out.subarray(0, 2 + written);
}
