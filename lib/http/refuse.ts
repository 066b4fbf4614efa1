/**
 * The one shape of every refusal: the reason as the status line's phrase
 * and as a short plain-text body, with a Content-Length (upstream sends
 * none on auth failures).
 *
 * @module
 */
import type { LogFields } from "../log.ts";
import { formatAddr } from "../target.ts";
import type { ConnInfo } from "../types.ts";

/**
 * A refusal response.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { refuse } from "./refuse.ts";
 *
 * const res = refuse(403, "Token not present"); // HTTP/1.1 403 Token not present
 * assert.equal(res.statusText, "Token not present");
 * assert.equal(await res.text(), "Token not present\n");
 * ```
 */
export function refuse(
  status: number,
  reason: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(`${reason}\n`, {
    status,
    statusText: reason.replace(/[^\t\x20-\x7e]/g, "?"),
    headers: { ...headers, "content-type": "text/plain; charset=utf-8" },
  });
}

/** The fields of a refusal's JSON log line (`--log-format=json`). */
export function refuseFields(
  info: Pick<ConnInfo, "id" | "remote" | "peer">,
  status: number,
): LogFields {
  return { event: "refuse", ...clientFields(info), status };
}

/** The `id`, `client` and (behind a proxy) `peer` fields of a connection's JSON log lines. */
export function clientFields(info: Pick<ConnInfo, "id" | "remote" | "peer">): LogFields {
  // An undefined field is left out of the line.
  return {
    id: info.id,
    client: formatAddr(info.remote),
    peer: info.peer && formatAddr(info.peer),
  };
}
