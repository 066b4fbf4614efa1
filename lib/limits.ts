/**
 * The size and time limits of one connection, named once: what may wait in
 * each direction before the sending side is paused, what is held whole, and
 * how long each phase may take. Constants only, so `lib/` (help texts) and
 * the adapters share them.
 *
 * @module
 */

/** Bytes queued in a readable before its socket is paused. */
export const HIGH_WATER_MARK = 256 * 1024;

/** Bytes queued for the client before writes wait for the socket to drain. */
export const SEND_HIGH_WATER_MARK = 1024 * 1024;

/**
 * The largest client text message (base64 mode), which is held whole;
 * larger ones close with 1009. Binary messages are streamed: no limit.
 */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** How long a client may take to answer our close frame before it is cut off. */
export const CLOSE_TIMEOUT_MS = 5000;

/** How long a new connection may take to send its first bytes. */
export const FIRST_BYTE_TIMEOUT_MS = 3000;

/**
 * How long a connection may take to become a WebSocket session or to send a
 * whole HTTP request head (`--handshake-timeout`).
 */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
