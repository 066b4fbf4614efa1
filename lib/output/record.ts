/**
 * Session recording in noVNC's playback format, byte for byte as upstream
 * writes it: a JavaScript file whose `VNC_frame_data` array holds one string
 * per chunk, `'{ms{...'` from the target, `'}ms}...'` from the client, and
 * an `'EOF'` end marker.
 *
 * @module
 */

/** The first line of a recording. */
export const RECORD_HEADER = "var VNC_frame_data = [\n";

/** The last line of a recording. */
export const RECORD_FOOTER = "'EOF'];\n";

const ESCAPES: Record<number, string> = {
  0x09: "\\t",
  0x0a: "\\n",
  0x0d: "\\r",
  0x27: "\\'",
  0x5c: "\\\\",
};

/**
 * Escapes bytes as upstream does (latin-1, Python `unicode_escape`, then
 * `'` → `\'`): printable ASCII as is, `\t \n \r \\ \'`, anything else `\xNN`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapeRecordBytes } from "./record.ts";
 *
 * assert.equal(escapeRecordBytes(new Uint8Array([0x41, 0x27, 0x00, 0xff])), "A\\'\\x00\\xff");
 * ```
 */
export function escapeRecordBytes(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) {
    const escaped = ESCAPES[b];
    if (escaped) out += escaped;
    else if (b >= 0x20 && b <= 0x7e) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return out;
}

/**
 * One recorded chunk as a line of the array.
 *
 * @param fromClient True for client → target bytes.
 * @param ms Milliseconds since the session started.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { recordFrame } from "./record.ts";
 *
 * const frame = recordFrame(true, 1, new TextEncoder().encode("RFB 003.008\n"));
 * assert.equal(frame, "'}1}RFB 003.008\\n',\n");
 * ```
 */
export function recordFrame(fromClient: boolean, ms: number, bytes: Uint8Array): string {
  const mark = fromClient ? "}" : "{";
  return `'${mark}${Math.floor(ms)}${mark}${escapeRecordBytes(bytes)}',\n`;
}
