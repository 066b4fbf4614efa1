/**
 * The client address a trusted proxy reports (`--trusted-proxy`): from
 * `Forwarded` (RFC 7239, its `for=` parameters) or else `X-Forwarded-For`,
 * the rightmost hop that is not itself a trusted proxy. Pure.
 *
 * @module
 */
import { MAX_FORWARDED_HOPS } from "../limits.ts";
import type { ConnInfo, HeaderReader, NetAddr } from "../types.ts";
import { type Cidr, cidrContains, parseIp } from "./cidr.ts";

/**
 * One hop's address: `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]:80`,
 * `2001:db8::1` (no port: 0); undefined for anything else, such as RFC
 * 7239's `unknown` and obfuscated `_names`.
 */
export function parseNode(text: string): NetAddr | undefined {
  let host = text;
  let port = "";
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    if (end < 0) return undefined;
    host = text.slice(1, end);
    const rest = text.slice(end + 1);
    if (rest !== "" && !rest.startsWith(":")) return undefined;
    port = rest.slice(1);
  } else if (text.indexOf(":") === text.lastIndexOf(":") && text.includes(":")) {
    [host, port] = text.split(":") as [string, string];
  }
  if (parseIp(host) === undefined) return undefined;
  // An obfuscated port (`_abc`) hides only the port.
  const number = /^\d{1,5}$/.test(port) ? Number(port) : 0;
  return { hostname: host, port: number <= 65535 ? number : 0 };
}

/**
 * The last {@link MAX_FORWARDED_HOPS} `for=` values of a `Forwarded` header,
 * in order, unquoted; `""` for an element without one.
 */
function forwardedFor(header: string): string[] {
  const hops: string[] = [];
  let current = "";
  let i = 0;
  const n = header.length;
  while (i < n) {
    // One `name=value` pair, then `;` (same element) or `,` (next element).
    const eq = header.indexOf("=", i);
    const stop = nextDelimiter(header, i);
    if (eq < 0 || eq > stop) {
      i = stop;
    } else {
      const name = header.slice(i, eq).trim().toLowerCase();
      let value: string;
      let j = eq + 1;
      while (header[j] === " " || header[j] === "\t") j++;
      if (header[j] === '"') {
        value = "";
        j++;
        while (j < n && header[j] !== '"') {
          if (header[j] === "\\") j++;
          value += header[j] ?? "";
          j++;
        }
        i = nextDelimiter(header, j + 1);
      } else {
        i = nextDelimiter(header, j);
        value = header.slice(j, i).trim();
      }
      if (name === "for") current = value;
    }
    if (i >= n || header[i] === ",") {
      hops.push(current);
      if (hops.length > MAX_FORWARDED_HOPS) hops.shift();
      current = "";
    }
    i++;
  }
  return hops;
}

/** The index of the next `;` or `,` from `from`, or the length. */
function nextDelimiter(text: string, from: number): number {
  for (let i = from; i < text.length; i++) if (text[i] === ";" || text[i] === ",") return i;
  return text.length;
}

/** The last {@link MAX_FORWARDED_HOPS} entries of `X-Forwarded-For`, read from the right. */
function xForwardedFor(header: string): string[] {
  const hops: string[] = [];
  let end = header.length;
  while (end >= 0 && hops.length < MAX_FORWARDED_HOPS) {
    const comma = header.lastIndexOf(",", end - 1);
    hops.unshift(header.slice(comma + 1, end).trim());
    if (comma < 0) break;
    end = comma;
  }
  return hops;
}

/**
 * The connection as seen through trusted proxies: when the TCP peer
 * (`info.remote`) is in `trusted`, `remote` becomes the client its proxies
 * report and `peer` the TCP peer; otherwise, and without such headers,
 * `info` as it is. Walking the hops from the right, each trusted address
 * passes on to the next; the first untrusted one is the client, and one
 * that is no address (`unknown`, an obfuscated name, garbage) stops the walk
 * at the last trusted hop.
 *
 * @example
 * ```ts
 * import { parseCidrList } from "./cidr.ts";
 * import { clientThroughProxies } from "./forwarded.ts";
 *
 * const info = { id: 1, remote: { hostname: "10.0.0.2", port: 50000 }, tls: false };
 * const headers = new Headers({ "x-forwarded-for": "198.51.100.7, 10.0.0.9" });
 * const seen = clientThroughProxies(info, headers, parseCidrList("10.0.0.0/8"));
 * console.log(seen.remote.hostname, seen.peer?.hostname); // 198.51.100.7 10.0.0.2
 * ```
 */
export function clientThroughProxies(
  info: ConnInfo,
  headers: HeaderReader,
  trusted: readonly Cidr[],
): ConnInfo {
  if (!cidrContains(trusted, info.remote.hostname)) return info;
  const forwarded = headers.get("forwarded");
  const xff = forwarded === null ? headers.get("x-forwarded-for") : null;
  if (forwarded === null && xff === null) return info;
  const hops = forwarded !== null ? forwardedFor(forwarded) : xForwardedFor(xff!);
  let client = info.remote;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = parseNode(hops[i]!);
    if (!hop) break;
    client = hop;
    if (!cidrContains(trusted, hop.hostname)) break;
  }
  if (client === info.remote) return info;
  return { ...info, remote: client, peer: info.peer ?? info.remote };
}
