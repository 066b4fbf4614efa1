/**
 * Syslog formatting, as upstream's `WebsockifySysLogHandler` does it: RFC 5424
 * `<PRI>1 TIMESTAMP HOSTNAME websockify PID - - MSG` or, with
 * `--legacy-syslog`, `<PRI>websockify[PID]: MSG`. Pure: the sockets live in
 * `adapters/output/syslog.ts`.
 *
 * @module
 */
import { escapeControls, type Level, type Logger } from "../log.ts";
import { UsageError } from "../errors.ts";

/** The `user` facility, upstream's default. */
export const FACILITY_USER = 1;
/** The `daemon` facility, used with `-D`. */
export const FACILITY_DAEMON = 3;

/** Syslog severities of our levels (RFC 5424 table 2). */
export const SEVERITY: Readonly<Record<Level, number>> = { error: 3, warn: 4, info: 6, debug: 7 };

/** Where `--syslog` sends: UDP `host:port`, or a unix socket path such as `/dev/log`. */
export type SyslogAddress =
  | { readonly kind: "udp"; readonly host: string; readonly port: number }
  | { readonly kind: "unix"; readonly path: string };

/**
 * Parses `--syslog SERVER` as upstream does: with a `:` it is `host:port`
 * (split at the last `:`), else a unix socket path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSyslogAddress } from "./syslog.ts";
 *
 * assert.deepEqual(parseSyslogAddress("loghost:514"), { kind: "udp", host: "loghost", port: 514 });
 * assert.deepEqual(parseSyslogAddress("[::1]:514"), { kind: "udp", host: "::1", port: 514 });
 * assert.deepEqual(parseSyslogAddress("/dev/log"), { kind: "unix", path: "/dev/log" });
 * ```
 */
export function parseSyslogAddress(text: string): SyslogAddress {
  const colon = text.lastIndexOf(":");
  if (colon < 0) return { kind: "unix", path: text };
  const portText = text.slice(colon + 1).trim();
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throw new UsageError("Error parsing syslog port");
  // `[::1]:514` too (upstream would try to resolve `[::1]`).
  const host = text.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  return { kind: "udp", host: host || "localhost", port };
}

/** What {@link formatSyslog} needs besides the message. */
export interface SyslogFormat {
  /** `<PRI>ident[pid]: msg` (RFC 3164 style) instead of RFC 5424. */
  readonly legacy: boolean;
  readonly facility: number;
  readonly hostname: string;
  readonly pid: number;
  readonly now: Date;
  /** The app name; upstream's is `websockify`. */
  readonly ident?: string;
  /** Stream sockets end each message with `\n`; datagrams carry none. */
  readonly stream?: boolean;
}

/**
 * The PRI value: facility × 8 + severity.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FACILITY_USER, syslogPri } from "./syslog.ts";
 *
 * assert.equal(syslogPri("info", FACILITY_USER), 14);
 * ```
 */
export function syslogPri(level: Level, facility: number): number {
  return facility * 8 + SEVERITY[level];
}

const BOM = [0xef, 0xbb, 0xbf];
const encoder = new TextEncoder();

/**
 * The message part: newlines folded to spaces, plain ASCII when possible,
 * else UTF-8 after a BOM (as upstream does in both formats).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { syslogBody } from "./syslog.ts";
 *
 * assert.deepEqual(syslogBody("a\nb"), new TextEncoder().encode("a b"));
 * assert.deepEqual(syslogBody("é"), new Uint8Array([0xef, 0xbb, 0xbf, 0xc3, 0xa9]));
 * ```
 */
export function syslogBody(message: string): Uint8Array {
  const text = message.replaceAll("\n", " ");
  const bytes = encoder.encode(text);
  // deno-lint-ignore no-control-regex
  return /^[\x00-\x7f]*$/.test(text) ? bytes : new Uint8Array([...BOM, ...bytes]);
}

/** Header fields are ASCII only (upstream encodes them with `errors='ignore'`). */
// deno-lint-ignore no-control-regex
const ascii = (text: string) => text.replace(/[^\x00-\x7f]/g, "");

/**
 * The bytes of one syslog message, or `undefined` for an empty message (upstream
 * sends nothing then).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FACILITY_USER, formatSyslog } from "./syslog.ts";
 *
 * const bytes = formatSyslog("info", "hello", {
 *   legacy: false,
 *   facility: FACILITY_USER,
 *   hostname: "h",
 *   pid: 7,
 *   now: new Date("2026-11-21T10:37:36.123Z"),
 * });
 * const line = new TextDecoder().decode(bytes);
 * assert.equal(line, "<14>1 2026-11-21T10:37:36Z h websockify 7 - - hello");
 * ```
 */
export function formatSyslog(
  level: Level,
  message: string,
  options: SyslogFormat,
): Uint8Array | undefined {
  if (message === "") return undefined;
  const pri = syslogPri(level, options.facility);
  const ident = ascii((options.ident ?? "websockify").slice(0, 24));
  const head = options.legacy
    ? `<${pri}>${ident}[${options.pid}]: `
    : `<${pri}>1 ${options.now.toISOString().slice(0, 19)}Z ` +
      `${ascii(options.hostname.slice(0, 255)) || "-"} ${ident} ${options.pid} - - `;
  const body = syslogBody(message);
  const tail = options.stream ? 1 : 0;
  const out = new Uint8Array(head.length + body.length + tail);
  out.set(encoder.encode(head));
  out.set(body, head.length);
  if (tail) out[out.length - 1] = 0x0a;
  return out;
}

/**
 * A logger that also hands each message, with its level and without the
 * timestamp prefix, to `send` (debug only when `logger.verbose`), control
 * characters escaped as `logger` does.
 *
 * @example
 * ```ts
 * import { createLogger } from "../log.ts";
 * import { teeLogger } from "./syslog.ts";
 *
 * const lines: string[] = [];
 * const log = teeLogger(createLogger({ write: console.error }), (level, message) => {
 *   lines.push(`${level} ${message}`);
 * });
 * log.info("hello"); // on stderr, and "info hello" in lines
 * ```
 */
export function teeLogger(
  logger: Logger,
  send: (level: Level, message: string) => void,
): Logger {
  const both = (level: Level) => (message: string) => {
    logger[level](message);
    send(level, escapeControls(message));
  };
  return {
    debug: logger.verbose ? both("debug") : () => {},
    info: both("info"),
    warn: both("warn"),
    error: both("error"),
    verbose: logger.verbose,
    traffic: logger.traffic,
    event: logger.event && ((level, message, fields) => {
      if (level === "debug" && !logger.verbose) return;
      logger.event!(level, message, fields);
      send(level, escapeControls(message));
    }),
  };
}
