/**
 * The request URL from a request's Host header and target. The URL is built
 * as text, so a Host that is not an authority could move bytes into the path
 * or query (`Host: h?token=b#` would replace `?token=a`): it is checked first.
 *
 * @module
 */

/**
 * RFC 7230 `Host`: a reg-name (which covers IPv4 addresses) or a bracketed
 * IPv6 literal, then an optional `:port`. Whether the literal is a valid
 * address is left to the URL parser.
 */
const HOST = /^(?:(?:[\w\-.~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*|\[[0-9A-Fa-f:.]+\])(?::\d*)?$/;

/**
 * The absolute URL of a request: `target` (origin-form `/path?query`, or
 * absolute-form) against its Host header (`localhost` when absent or empty).
 * Throws a `TypeError` for an invalid Host, which the server answers with 400.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requestUrl } from "./host.ts";
 *
 * assert.equal(requestUrl("h:6080", "/?token=a"), "http://h:6080/?token=a");
 * ```
 */
export function requestUrl(host: string | undefined, target: string): string {
  if (host && !HOST.test(host)) throw new TypeError("Invalid Host header");
  const base = `http://${host || "localhost"}`;
  return target.startsWith("/") ? base + target : new URL(target, base).href;
}
