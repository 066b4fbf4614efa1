/**
 * Every size and time limit, named once: for one connection, what may wait
 * in each direction before the sending side is paused, what is held whole,
 * and how long each phase may take; then the limits of the token stores,
 * the log outputs and the process helpers. Constants only, so `lib/` (help
 * texts) and the adapters share them.
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

/**
 * How late a connection's deadline (handshake, close frame, connect, linger,
 * heartbeat) may ring at most, in exchange for sharing one timer
 * (lib/deadlines.ts); short delays get less, a twentieth of the delay.
 */
export const DEADLINE_GRANULARITY_MS = 100;

/** How long a new connection may take to send its first bytes. */
export const FIRST_BYTE_TIMEOUT_MS = 3000;

/**
 * How long a connection may take to become a WebSocket session or to send a
 * whole HTTP request head (`--handshake-timeout`).
 */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** Node's default limit on a request head (`--max-http-header-size`). */
export const MAX_HEAD_BYTES = 16 * 1024;

/**
 * More header lines than any browser sends. Bun's `node:http` refuses a head
 * with many more (and Node keeps only the first 2000): such a head goes to
 * the HTTP server, to be answered as it would be there.
 */
export const MAX_HEADERS = 64;

/**
 * `Forwarded` and `X-Forwarded-For` hops looked at (`--trusted-proxy`), from
 * the right: a longer chain is cut there, as if its next hop were untrusted.
 */
export const MAX_FORWARDED_HOPS = 32;

/**
 * The longest PROXY protocol header (`--proxy-protocol`): version 1's own
 * limit, and for version 2 the 16-byte head plus the addresses and TLVs;
 * a connection that sends a longer one is closed.
 */
export const PROXY_V1_MAX_BYTES = 107;
export const PROXY_V2_MAX_BYTES = 16 + 512;

/** A request body shorter than this without a Content-Length is read first to get one. */
export const SHORT_BODY_BYTES = 64 * 1024;

/** `--web` files up to this size are read whole rather than streamed. */
export const WHOLE_FILE_BYTES = 1024 * 1024;

/** How long a target may take to connect before the session fails. */
export const CONNECT_TIMEOUT_MS = 10_000;

/** How long the target may take to close after the client has, before it is cut off. */
export const LINGER_MS = 5000;

/** How long a socket at the `--unix-listen` path may take to answer the probe. */
export const UNIX_PROBE_MS = 2000;

/** Renewed TLS certificate files are looked for at most this often. */
export const TLS_RELOAD_CHECK_MS = 1000;

/** How long one token API lookup may take, answer included (the default). */
export const TOKEN_API_TIMEOUT_MS = 5000;

/** How long a Redis lookup, a connection attempt or start-up waits for Redis. */
export const REDIS_TIMEOUT_MS = 1500;

/** The first Redis reconnect delay; it doubles up to {@link REDIS_BACKOFF_MAX_MS}. */
export const REDIS_BACKOFF_FIRST_MS = 50;

/** The longest Redis reconnect delay, so recovery takes at most about this long. */
export const REDIS_BACKOFF_MAX_MS = 1000;

/** Redis commands waiting for an answer beyond which new lookups fail. */
export const REDIS_QUEUE_MAX = 1000;

/**
 * File times are only as fine as the kernel's clock tick (the filesystem's,
 * or Deno's whole milliseconds): an edit this soon after another may keep
 * size and times. Token data read while its files are this young is re-read
 * on the next call instead of trusted.
 */
export const TOKEN_FILE_RACY_MS = 2000;

/**
 * Write log lines (stderr, the log file) at once past this many queued
 * characters, rather than at the end of the turn, to bound memory in a flood.
 */
export const LOG_MAX_PENDING = 64 * 1024;

/** Retry a failed syslog name lookup this much later; messages meanwhile are dropped. */
export const SYSLOG_RETRY_MS = 5000;

/**
 * Syslog messages held while they cannot be sent (a stalled network stack, a
 * first connection being tried); more are dropped.
 */
export const SYSLOG_MAX_QUEUED = 1000;

/** Bytes waiting in a syslog socket or pipe beyond which new messages are dropped. */
export const SYSLOG_MAX_BUFFERED = 1 << 20;

/** After `logger` exits, try it again this much later. */
export const SYSLOG_RESPAWN_MS = 1000;

/** After `logger` cannot start at all, try it again this much later. */
export const SYSLOG_NO_LOGGER_MS = 60_000;

/** How long closing a syslog output waits for queued messages to go out. */
export const SYSLOG_FLUSH_MS = 1000;

/** The `--timeout` and `--idle-timeout` clock ticks this often, as upstream's. */
export const LIFECYCLE_TICK_MS = 1000;

/** After a signal, how long the sessions (or workers) get before the process exits anyway. */
export const STOP_GRACE_MS = 5000;

/** The longest delay a timer takes on every runtime; longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A worker that exited is started again this much later. */
export const WORKER_RESTART_DELAY_MS = 1000;

/** How often a worker checks that its supervisor is still there. */
export const PARENT_POLL_MS = 500;

/** How long a wrapped program gets after SIGTERM before SIGKILL (the default). */
export const WRAP_GRACE_MS = 3000;

/** How long a wrapped program is waited for after SIGKILL. */
export const WRAP_KILL_WAIT_MS = 2000;

/**
 * The wrapped program's port is picked at random from WRAP_PORT_MIN up to the
 * start of the ephemeral range, at most WRAP_PORT_TRIES times (then any free
 * port); EPHEMERAL_LOW_DEFAULT is that start where the kernel does not say.
 */
export const WRAP_PORT_MIN = 10_000;
export const WRAP_PORT_TRIES = 20;
export const EPHEMERAL_LOW_DEFAULT = 32768;

/** Upstream's respawn throttle: this many recent start times are kept... */
export const RESPAWN_HISTORY = 3;

/** ...and a restart waits until their mean is this long ago. */
export const RESPAWN_WINDOW_MS = 10_000;

/** `--rate-limit` counts new sessions per client address over this window. */
export const RATE_LIMIT_WINDOW_MS = 60_000;

/**
 * `--rate-limit` remembers at most this many client addresses (IPv6 by /64);
 * past it, the least recently seen are forgotten.
 */
export const RATE_LIMIT_MAX_ADDRESSES = 10_000;

/** `Retry-After` seconds on a 503 for `--max-connections`. */
export const BUSY_RETRY_AFTER_S = 10;

/** `--max-session-duration` and `--session-idle-timeout` are checked this often. */
export const SESSION_SWEEP_MS = 1000;
/** How long one `/readyz` check (a token store's) may take before it counts as failed. */
export const READY_CHECK_MS = 2000;

/** How long a scrape waits for each worker's metrics (`--metrics` with `--workers`). */
export const METRICS_WORKER_MS = 2000;
