/**
 * Error classes callers catch.
 *
 * @module
 */

/** A setting that cannot be used (a missing file, a bad key); one-line message. */
export class ConfigError extends Error {
  /** The class name, for logs. */
  override name = "ConfigError";
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
