/**
 * Parsing and formatting of `host:port` arguments, as upstream does it: split
 * at the last colon, square brackets around IPv6 literals stripped.
 *
 * @module
 */
import { UsageError } from "./errors.ts";
import type { ConnInfo, NetAddr, Target } from "./types.ts";

function parsePort(text: string, min: number): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= min && port <= 65535 ? port : undefined;
}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/**
 * Parses the listen positional `[host:]port`. No host means every address.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseListen } from "./target.ts";
 *
 * assert.deepEqual(parseListen("[::1]:6080"), { hostname: "::1", port: 6080 });
 * assert.deepEqual(parseListen("6080"), { hostname: "", port: 6080 });
 * ```
 */
export function parseListen(arg: string): NetAddr {
  const i = arg.lastIndexOf(":");
  const hostname = i < 0 ? "" : stripBrackets(arg.slice(0, i));
  const port = parsePort(arg.slice(i + 1), 0);
  if (port === undefined) throw new UsageError("Error parsing listen port");
  return { hostname, port };
}

/**
 * Parses the target positional `host:port`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTarget } from "./target.ts";
 *
 * const target = parseTarget("localhost:5900");
 * assert.deepEqual(target, { kind: "tcp", hostname: "localhost", port: 5900 });
 * ```
 */
export function parseTarget(arg: string): Target {
  const i = arg.lastIndexOf(":");
  if (i < 0) throw new UsageError("Error parsing target");
  const hostname = stripBrackets(arg.slice(0, i));
  const port = parsePort(arg.slice(i + 1), 1);
  if (port === undefined || hostname === "") {
    throw new UsageError("Error parsing target port");
  }
  return { kind: "tcp", hostname, port };
}

/**
 * Formats an address for logs: IPv6 literals get brackets; port 0 (an
 * address a proxy reported without one) is left out.
 */
export function formatAddr(addr: NetAddr): string {
  if (addr.hostname.startsWith("/")) return addr.hostname; // a unix socket path
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return addr.port === 0 && host ? host : `${host}:${addr.port}`;
}

/** Formats a target for logs. */
export function formatTarget(target: Target): string {
  return target.kind === "unix" ? `unix socket ${target.path}` : formatAddr(target);
}

/**
 * How every log line names a connection: `#id address`, ` (peer address)`
 * when a proxy in front reported the client, and once it is a session,
 * ` -> target` after it.
 *
 * @example
 * ```ts
 * clientLabel({ id: 7, remote: { hostname: "::1", port: 50000 } }); // "#7 [::1]:50000"
 * ```
 */
export function clientLabel(
  info: Pick<ConnInfo, "id" | "remote" | "peer">,
  target?: Target,
): string {
  const peer = info.peer ? ` (peer ${formatAddr(info.peer)})` : "";
  const client = `#${info.id} ${formatAddr(info.remote)}${peer}`;
  return target ? `${client} -> ${formatTarget(target)}` : client;
}
