/**
 * Every error class callers catch, and the one way a log line or message
 * describes an error ({@link errorText}, {@link describeError}).
 *
 * @module
 */

/** A command-line value that cannot be used; the message is upstream's text. */
export class UsageError extends Error {
  /** The class name, for logs. */
  override name = "UsageError";
}

/** A setting that cannot be used (a missing file, a bad key); one-line message. */
export class ConfigError extends Error {
  /** The class name, for logs. */
  override name = "ConfigError";
}

/** A TLS setting that cannot be used; the message names the file. */
export class TlsConfigError extends ConfigError {
  /** The class name, for logs. */
  override name = "TlsConfigError";
}

const BRAND = Symbol.for("websockify.AuthenticationError");

/**
 * True for an {@link AuthenticationError}, also one from another copy of
 * this package (`instanceof` fails across copies, or across CJS and ESM).
 */
export function isAuthenticationError(error: unknown): error is AuthenticationError {
  return typeof error === "object" && error !== null && BRAND in error;
}

/** Options for {@link AuthenticationError}. */
export interface AuthenticationErrorOptions {
  /** HTTP status of the refusal; 403 by default. */
  status?: number;
  /** Extra response headers, such as `WWW-Authenticate`. */
  headers?: Record<string, string>;
  /** What the log says; the message by default. */
  logMessage?: string;
}

/**
 * A refused request. The message is the reason phrase sent to the client.
 *
 * @example
 * ```ts
 * import { AuthenticationError } from "./errors.ts";
 * import type { AuthPlugin } from "./plugins/plugins.ts";
 *
 * const plugin: AuthPlugin = {
 *   authenticate({ headers }) {
 *     if (headers.get("origin") !== "https://console.example") {
 *       throw new AuthenticationError("Invalid Origin", { status: 403 });
 *     }
 *   },
 * };
 * ```
 */
export class AuthenticationError extends Error {
  /** The class name, for logs. */
  override name = "AuthenticationError";
  /** Marks instances across copies of this module (a plugin may bundle its own). */
  readonly [BRAND] = true;
  /** The HTTP status of the refusal. */
  readonly status: number;
  /** Extra response headers. */
  readonly headers: Record<string, string>;
  /** What the log says about the refusal. */
  readonly logMessage: string;
  /**
   * Creates a refusal.
   *
   * @param message The reason phrase sent to the client.
   * @param options Status, headers and log text.
   */
  constructor(message: string, options: AuthenticationErrorOptions = {}) {
    super(message);
    this.status = options.status ?? 403;
    this.headers = options.headers ?? {};
    this.logMessage = options.logMessage ?? message;
  }
}

/**
 * One line from an error: its message's first line, else its code or name
 * (Node's AggregateError for "every address refused" has no message).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { errorText } from "./errors.ts";
 *
 * const error = new Error("connect ECONNREFUSED 127.0.0.1:1\n    at ...");
 * assert.equal(errorText(error), "connect ECONNREFUSED 127.0.0.1:1");
 * ```
 */
export function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  return error.message.split("\n")[0] || (typeof code === "string" ? code : error.name);
}

const CODE_TEXT: Record<string, string> = {
  EADDRINUSE: "address already in use",
  EADDRNOTAVAIL: "address not available",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  ENOTDIR: "not a directory",
  EISDIR: "is a directory",
};

/**
 * The same reason on every runtime for a start-up or file error: words for
 * its `code` where known (the runtimes word the same code differently),
 * else {@link errorText}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeError } from "./errors.ts";
 *
 * const error = Object.assign(new Error("x"), { code: "EADDRINUSE" });
 * assert.equal(describeError(error), "address already in use");
 * ```
 */
export function describeError(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && CODE_TEXT[code]) return CODE_TEXT[code];
  return errorText(error);
}
