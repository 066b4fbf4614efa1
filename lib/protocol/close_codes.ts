/**
 * The WebSocket close codes (RFC 6455 §7.4.1) and the reasons the proxy
 * sends with them, in one table for the frame parser
 * (`lib/protocol/frames.ts`), the connection (`adapters/server/ws_conn.ts`)
 * and the bridge (`lib/bridge/bridge.ts`). The reason texts are upstream
 * websockify's, byte for byte (but for the session limits', which upstream
 * lacks): clients and logs see them, so upstream's "Procotol" misspellings
 * stay.
 *
 * @module
 */

/** A normal close: the target closed. */
export const CLOSE_NORMAL = 1000;
/** The server is shutting down. */
export const CLOSE_GOING_AWAY = 1001;
/** The client broke the framing rules. */
export const CLOSE_PROTOCOL_ERROR = 1002;
/** A text frame where only binary is spoken. */
export const CLOSE_UNSUPPORTED = 1003;
/** Stands for "the close frame carried no code"; never sent. */
export const CLOSE_NO_STATUS = 1005;
/** Stands for "the connection dropped without a close frame"; never sent. */
export const CLOSE_ABNORMAL = 1006;
/** Text that is not UTF-8, or base64 that does not decode. */
export const CLOSE_INVALID_DATA = 1007;
/** A session limit was reached (`--max-session-duration`). */
export const CLOSE_POLICY_VIOLATION = 1008;
/** A message over the size limit. */
export const CLOSE_TOO_BIG = 1009;
/** The target failed (could not connect, or broke off). */
export const CLOSE_INTERNAL_ERROR = 1011;

/** The reasons sent with the codes above. */
export const CLOSE_REASON = {
  targetClosed: "Target closed",
  shuttingDown: "Server shutting down",
  connectFailed: "Failed to connect to downstream server",
  targetError: "Target connection error",
  invalidBase64: "Invalid base64 data",
  textUnsupported: "Unsupported: Text frames are not supported",
  tooBig: "Message too big",
  invalidText: "Invalid UTF-8 in text frame",
  lengthTopBit: "Protocol error: Frame length has its top bit set",
  controlTooLong: "Protocol error: Control frame too long",
  reservedBits: "Protocol error: Reserved bits set",
  notMasked: "Procotol error: Frame not masked",
  fragmentedControl: "Protocol error: Fragmented control frame",
  unexpectedContinuation: "Procotol error: Unexpected continuation frame",
  unexpectedNewFrame: "Procotol error: Unexpected new frame",
  invalidCloseCode: "Protocol error: Invalid close code",
  invalidCloseText: "Procotol error: Invalid UTF-8 in close",
  // Ours, not upstream's: the session limits.
  sessionTooLong: "Session exceeded the maximum duration",
  sessionIdle: "Session idle timeout",
} as const;

/** The reason for an opcode RFC 6455 does not define; `hex` is like `0x3`. */
export function unknownOpcodeReason(hex: string): string {
  return `Protocol error: Unknown opcode ${hex}`;
}

/** Close codes a client may send (RFC 6455 §7.4): defined ones, then registered and private. */
export function validCloseCode(code: number): boolean {
  return (code >= CLOSE_NORMAL && code <= 1014 && code !== 1004 && code !== CLOSE_NO_STATUS &&
    code !== CLOSE_ABNORMAL) ||
    (code >= 3000 && code <= 4999);
}
