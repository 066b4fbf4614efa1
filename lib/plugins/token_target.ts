/**
 * Targets from what token plugins read: `host:port` text (token files, token
 * APIs, Redis values) and `{ host, port }` objects (JSON token APIs, JWT
 * claims), both through `parseTarget` (`lib/target.ts`), as the command
 * line's target is; and the token API URL template. Pure: the plugins in
 * `adapters/` do the reading.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { parseTarget } from "../target.ts";
import type { Target } from "../types.ts";

/**
 * Parses `host:port` as the token plugins write it: trimmed, split at the
 * last colon (so `::1:5900` works), brackets around the host stripped (so
 * `[::1]:5900` works too, a fix over upstream). Throws {@link SyntaxError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseHostPort } from "./token_target.ts";
 *
 * const vnc1 = parseHostPort(" vnc1.example:5901\n");
 * assert.deepEqual(vnc1, { kind: "tcp", hostname: "vnc1.example", port: 5901 });
 * assert.deepEqual(parseHostPort("::1:5900"), { kind: "tcp", hostname: "::1", port: 5900 });
 * ```
 */
export function parseHostPort(text: string): Target {
  const trimmed = text.trim();
  try {
    if (/\s/.test(trimmed)) throw new UsageError("white space");
    return parseTarget(trimmed);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    throw new SyntaxError(`Cannot parse target "${trimmed}": expected host:port`);
  }
}

/**
 * The target in a JSON token API answer or JWT claims: `host` a string,
 * `port` a number or a string of digits (upstream takes both). Throws
 * {@link SyntaxError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { targetFromObject } from "./token_target.ts";
 *
 * const target = targetFromObject({ host: "10.0.0.5", port: "5900" });
 * assert.deepEqual(target, { kind: "tcp", hostname: "10.0.0.5", port: 5900 });
 * ```
 */
export function targetFromObject(value: unknown): Target {
  const { host, port } = (typeof value === "object" && value !== null ? value : {}) as Record<
    string,
    unknown
  >;
  if (typeof host !== "string" || host.trim() === "") {
    throw new SyntaxError(`Cannot use target: "host" must be a non-empty string`);
  }
  if (typeof port !== "number" && !(typeof port === "string" && /^\s*\d+\s*$/.test(port))) {
    throw new SyntaxError(`Cannot use target: "port" must be a number`);
  }
  const hostname = host.trim().replace(/^\[(.*)\]$/, "$1");
  // One parser for every plugin: rebuild the text form, brackets for IPv6.
  const text = hostname.includes(":") ? `[${hostname}]` : hostname;
  return parseHostPort(`${text}:${String(port).trim()}`);
}

/**
 * Fills a token API URL template the way upstream's `source % token` does
 * (`%s` is the token, `%%` a percent sign), but with the token URL-encoded
 * (a fix over upstream: `/`, `?`, `#` or `&` in a token cannot change the
 * request).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tokenUrl } from "./token_target.ts";
 *
 * const url = tokenUrl("http://api/lookup?token=%s", "a b/c");
 * assert.equal(url, "http://api/lookup?token=a%20b%2Fc");
 * ```
 */
export function tokenUrl(template: string, token: string): string {
  return template.replace(
    /%([%s])/g,
    (_, c: string) => c === "%" ? "%" : encodeURIComponent(token),
  );
}
