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
  /**
   * A line with structured fields: JSON output (`--log-format=json`) adds
   * the fields to `message`. Optional: {@link logEvent} falls back to the
   * plain method for loggers without it, as text loggers are, so a caller
   * that finds none can skip building the fields.
   */
  readonly event?: (level: Level, message: string, fields: LogFields) => void;
}

/** Structured fields of one log line; undefined ones are left out. */
export type LogFields = Readonly<Record<string, string | number | boolean | undefined>>;

/** Log line formats (`--log-format`). */
export type LogFormat = "text" | "json";

/**
 * Logs `message` with `fields` through `log.event`, or as a plain line when
 * the logger has no `event`.
 *
 * @example
 * ```ts
 * import { createLogger, logEvent } from "./log.ts";
 *
 * const log = createLogger({ write: console.error, format: "json" });
 * logEvent(log, "info", "#1 closed", { event: "close", id: 1 });
 * // {"time":"...","level":"info","msg":"#1 closed","event":"close","id":1}
 * ```
 */
export function logEvent(log: Logger, level: Level, message: string, fields: LogFields): void {
  if (log.event) log.event(level, message, fields);
  else log[level](message);
}

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /**
   * Writes one finished line (without the newline); `body` is the line
   * without its timestamp and level in text format, the whole line in JSON
   * (what syslog carries).
   */
  write: (line: string, level: Level, body: string) => void;
  /** Writes `--traffic` tokens; omit to turn traffic output off. */
  traffic?: (token: string) => void;
  /** Write `debug()` lines too. */
  verbose?: boolean;
  /** The clock, for tests. */
  now?: () => Date;
  /** `text` (default): `time LEVEL message`; `json`: one object per line. */
  format?: LogFormat;
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

// JSON.stringify escapes C0 controls but leaves DEL, C1 and U+2028/9 alone.
const JSON_UNSAFE = /[\x7f-\x9f\u2028\u2029]/g;

/** One JSON log line: time, level, msg, then the fields. */
function jsonLine(time: string, level: Level, message: string, fields?: LogFields): string {
  return JSON.stringify({ time, level, msg: message, ...fields }).replace(
    JSON_UNSAFE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Creates a logger that prefixes each line with a timestamp and level, and
 * escapes control characters in the message ({@link escapeControls}); with
 * `format: "json"` each line is one JSON object instead.
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
  const json = options.format === "json";
  const emit = json
    ? (level: Level, message: string, fields?: LogFields) => {
      const line = jsonLine(now().toISOString(), level, message, fields);
      write(line, level, line);
    }
    : (level: Level, message: string) => {
      const body = escapeControls(message);
      write(`${now().toISOString()} ${LEVEL_NAMES[level]} ${body}`, level, body);
    };
  const line = (level: Level) => (message: string) => emit(level, message);
  return {
    debug: verbose ? line("debug") : () => {},
    info: line("info"),
    warn: line("warn"),
    error: line("error"),
    verbose,
    traffic: options.traffic,
    // Text shows no fields: without `event`, callers need not build them.
    event: json
      ? (level, message, fields) => {
        if (level !== "debug" || verbose) emit(level, message, fields);
      }
      : undefined,
  };
}

const LEVEL_NAMES: Readonly<Record<Level, string>> = {
  debug: "DEBUG",
  info: "INFO",
  warn: "WARN",
  error: "ERROR",
};

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
    event: log.event &&
      ((level, message, fields) => log.event!(level, `${prefix} ${message}`, fields)),
  };
}
