/**
 * `TokenRedis` without I/O: the `--token-source` string and the values stored
 * under tokens. The client is in `adapters/stores/token_redis.ts`.
 *
 * Values, surrounding whitespace ignored: JSON `{"host": "host:port"}` (or
 * `{"host": "host", "port": 5900}`) or plain `host:port`. The port follows the
 * last colon, so `::1:5900` and `[::1]:5900` both work. Any other value is a
 * broken entry rather than an unknown token: parsing throws, so the client
 * gets 503 and the log names the key and the value (upstream logs "Unable to
 * parse token" and drops the connection; a 404 would hide the mistake).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRedisSource, parseRedisValue } from "./token_redis.ts";
 *
 * assert.deepEqual(parseRedisSource('redis.lan:6380:2::"vnc:tokens"'), {
 *   host: "redis.lan",
 *   port: 6380,
 *   db: 2,
 *   prefix: "vnc:tokens:",
 * });
 * assert.deepEqual(
 *   parseRedisValue('{"host": "10.0.0.5:5900"}', "vnc:tokens:t1"),
 *   { kind: "tcp", hostname: "10.0.0.5", port: 5900 },
 * );
 * ```
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import { parseTarget } from "../target.ts";
import { parseHostPort } from "./token_target.ts";
import type { Target } from "../types.ts";

/** The `TokenRedis` source format, for messages and help. */
export const REDIS_SOURCE_FORMAT = "host[:port[:db[:password[:namespace]]]]";

/** A parsed `TokenRedis` source: where the tokens are. */
export interface RedisSource {
  readonly host: string;
  readonly port: number;
  readonly db: number;
  readonly password?: string;
  /** Prepended to every token: `namespace:`, or `""` without a namespace. */
  readonly prefix: string;
}

const sourceError = (why: string) =>
  new ConfigError(`Cannot parse TokenRedis source: ${why} (format: ${REDIS_SOURCE_FORMAT})`);

/**
 * Splits a source on `:`, except inside a field wholly in double quotes
 * (upstream's rule, for namespaces and passwords with colons) or, for the
 * host only, in square brackets (IPv6).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitRedisSource } from "./token_redis.ts";
 *
 * assert.deepEqual(splitRedisSource('h::::"ns1:ns2"'), ["h", "", "", "", "ns1:ns2"]);
 * assert.deepEqual(splitRedisSource("[::1]:6380"), ["::1", "6380"]);
 * ```
 */
export function splitRedisSource(source: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    const close = source[i] === '"' ? '"' : source[i] === "[" && i === 0 ? "]" : undefined;
    let end: number;
    if (close) {
      end = source.indexOf(close, i + 1);
      if (end < 0) throw sourceError(`no closing ${close} in field ${fields.length + 1}`);
      if (end + 1 < source.length && source[end + 1] !== ":") {
        throw sourceError(`text after the closing ${close} in field ${fields.length + 1}`);
      }
      fields.push(source.slice(i + 1, end));
      end++;
    } else {
      end = source.indexOf(":", i);
      if (end < 0) end = source.length;
      fields.push(source.slice(i, end));
    }
    if (end >= source.length) return fields;
    i = end + 1;
  }
}

function integer(text: string, what: string, min: number, max: number): number {
  const n = /^\d{1,10}$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) throw sourceError(`${what} "${text}" is not a number ${min}-${max}`);
  return n;
}

/**
 * Parses `host[:port[:db[:password[:namespace]]]]`; empty fields take the
 * defaults (port 6379, db 0, no password, no namespace).
 *
 * @param source The `--token-source` value.
 * @returns Where to connect and the key prefix.
 * @throws {ConfigError} When the source is missing or malformed.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRedisSource } from "./token_redis.ts";
 *
 * const local = { host: "localhost", port: 6379, db: 0, prefix: "" };
 * assert.deepEqual(parseRedisSource("localhost"), local);
 * assert.equal(parseRedisSource("10.0.0.2:::s3cret:vnc").password, "s3cret");
 * assert.equal(parseRedisSource("10.0.0.2:::s3cret:vnc").prefix, "vnc:");
 * ```
 */
export function parseRedisSource(source: string | undefined): RedisSource {
  if (source === undefined) throw sourceError("--token-source is missing");
  const fields = splitRedisSource(source);
  if (fields.length > 5) {
    throw sourceError(`${fields.length} fields, at most 5 (quote a field that holds ":")`);
  }
  const [host = "", port = "", db = "", password = "", namespace = ""] = fields;
  if (host === "") throw sourceError("the host is empty");
  return {
    host,
    port: port === "" ? 6379 : integer(port, "port", 1, 65535),
    db: db === "" ? 0 : integer(db, "db", 0, 2 ** 31 - 1),
    ...(password === "" ? {} : { password }),
    prefix: namespace === "" ? "" : `${namespace}:`,
  };
}

/**
 * The target in a value, or undefined (or a throw) when the value has no
 * usable one. Text is read as every token plugin reads it; the JSON form is
 * upstream's Redis one (`port` optional, `host` may hold `host:port`), so it
 * goes to {@link parseTarget} itself.
 */
function target(value: string): Target | undefined {
  if (!value.startsWith("{")) return parseHostPort(value);
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    return undefined;
  }
  const { host, port } = (json ?? {}) as { host?: unknown; port?: unknown };
  if (typeof host !== "string") return undefined;
  if (port === undefined) return parseTarget(host);
  if (!/^\d{1,5}$/.test(String(port))) return undefined;
  // parseTarget splits at the last colon and drops brackets: IPv6 hosts work as is.
  return parseTarget(`${host}:${port}`);
}

/**
 * Parses the value stored under a token.
 *
 * @param value The value as read (UTF-8).
 * @param key The Redis key it was read from, for the error message.
 * @returns The target.
 * @throws {SyntaxError} When the value holds no `host:port`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRedisValue } from "./token_redis.ts";
 *
 * const vm = { kind: "tcp", hostname: "10.0.0.5", port: 5900 };
 * assert.deepEqual(parseRedisValue(" 10.0.0.5:5900\n", "t1"), vm);
 * assert.deepEqual(parseRedisValue('{"host": "::1:5900"}', "t1"), { ...vm, hostname: "::1" });
 * ```
 */
export function parseRedisValue(value: string, key: string): Target {
  const text = value.trim();
  let found: Target | undefined;
  try {
    found = target(text);
  } catch {
    // The parsers' errors: handled below with the key and value.
  }
  if (found) return found;
  const shown = JSON.stringify(text.length > 100 ? `${text.slice(0, 100)}…` : text);
  throw new SyntaxError(
    `Redis key "${key}" holds ${shown}, not host:port or {"host": "host:port"}`,
  );
}
