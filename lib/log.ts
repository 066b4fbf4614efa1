/**
 * The logger: one line per event with an ISO timestamp and a level. Output
 * goes through an injected `write` so that `lib/` does no I/O itself.
 * Messages carry client-chosen text (tokens, user names, close reasons), so
 * the logger escapes control characters itself: no caller can forge a line.
 *
 * @module
 */

/** Log levels, least severe first. */
export type Level = "debug" | "info" | "warn" | "error";

/** Where log lines go. `traffic` receives `--traffic` tokens. */
export interface Logger {
  /** Detail written only with `-v`. */
  debug(message: string): void;
  /** Normal events: sessions opening and closing, start-up. */
  info(message: string): void;
  /** Problems the proxy carries on from. */
  warn(message: string): void;
  /** Problems that end something. */
  error(message: string): void;
  /** True when `debug()` lines are written (`-v`). */
  readonly verbose: boolean;
  /** Per-frame flow tokens (`--traffic`), or undefined when off. */
  readonly traffic?: (token: string) => void;
}

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** Writes one finished line (without the newline). */
  write: (line: string) => void;
  /** Writes `--traffic` tokens; omit to turn traffic output off. */
  traffic?: (token: string) => void;
  /** Write `debug()` lines too. */
  verbose?: boolean;
  /** The clock, for tests. */
  now?: () => Date;
}

const NAMED: Readonly<Record<string, string>> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/**
 * `text` with C0 and C1 controls, DEL and the Unicode line and paragraph
 * separators escaped (`\n`, `\r`, `\t`, else `\xNN` or `\uNNNN`), so it
 * stays on one line in every sink.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapeControls } from "./log.ts";
 *
 * assert.equal(escapeControls("a\nb\x1b[2J"), "a\\nb\\x1b[2J");
 * ```
 */
export function escapeControls(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, (c) => {
    const code = c.charCodeAt(0);
    return NAMED[c] ??
      (code > 0xff ? `\\u${code.toString(16)}` : `\\x${code.toString(16).padStart(2, "0")}`);
  });
}

/**
 * How logs name a token: never whole (tokens are credentials, and logs go to
 * files and syslog), but enough to tell tokens apart and find one: at most
 * four leading characters (fewer for short tokens) and a 32-bit FNV-1a hash.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tokenLabel } from "./log.ts";
 *
 * assert.match(tokenLabel("eyJhbGciOiJIUzI1NiJ9.e30.sig"), /^eyJh\.\.#[0-9a-f]{8}$/);
 * assert.match(tokenLabel("vm1"), /^v\.\.#[0-9a-f]{8}$/);
 * ```
 */
export function tokenLabel(token: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < token.length; i++) {
    hash = Math.imul(hash ^ token.charCodeAt(i), 0x01000193);
  }
  const prefix = token.slice(0, Math.min(4, Math.floor(token.length / 3)));
  return `${prefix}..#${(hash >>> 0).toString(16).padStart(8, "0")}`;
}

/**
 * Creates a logger that prefixes each line with a timestamp and level, and
 * escapes control characters in the message ({@link escapeControls}).
 *
 * @example
 * ```ts
 * import { createLogger } from "./log.ts";
 *
 * const log = createLogger({ write: (line) => console.error(line) });
 * log.info("Listening"); // 2026-11-21T10:37:36.123Z INFO Listening
 * ```
 */
export function createLogger(options: LoggerOptions): Logger {
  const { write, verbose = false, now = () => new Date() } = options;
  const line = (level: string) => (message: string) =>
    write(`${now().toISOString()} ${level} ${escapeControls(message)}`);
  return {
    debug: verbose ? line("DEBUG") : () => {},
    info: line("INFO"),
    warn: line("WARN"),
    error: line("ERROR"),
    verbose,
    traffic: options.traffic,
  };
}

/** A logger that drops everything, the library default. */
export const SILENT_LOGGER: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  verbose: false,
};

/**
 * A logger that starts every message with `prefix` and a space, as each
 * `--workers` process does with its number (`w2 #5 ...`: session 5 of
 * worker 2), so that one log holds no duplicate session ids.
 *
 * @example
 * ```ts
 * import { createLogger, prefixLogger } from "./log.ts";
 *
 * const log = prefixLogger(createLogger({ write: console.error }), "w2");
 * log.info("#5 closed"); // 2026-11-21T10:37:36.123Z INFO w2 #5 closed
 * ```
 */
export function prefixLogger(log: Logger, prefix: string): Logger {
  const with_ = (write: (message: string) => void) => (message: string) =>
    write(`${prefix} ${message}`);
  return {
    debug: log.verbose ? with_((m) => log.debug(m)) : () => {},
    info: with_((m) => log.info(m)),
    warn: with_((m) => log.warn(m)),
    error: with_((m) => log.error(m)),
    verbose: log.verbose,
    traffic: log.traffic,
  };
}
