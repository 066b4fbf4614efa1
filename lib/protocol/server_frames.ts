/**
 * Frames the server sends (RFC 6455 §5.2): unmasked, FIN set. Data frames
 * go out as a head and the payload in one writev, small ones and control
 * frames of the server's own as one buffer.
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
  const head = new Uint8Array(10);
  head[0] = 0x80 | opcode;
  head[1] = 127;
  const view = new DataView(head.buffer);
  view.setUint32(2, Math.floor(length / 2 ** 32));
  view.setUint32(6, length >>> 0);
  return head;
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
