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
