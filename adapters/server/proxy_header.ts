/**
 * The PROXY protocol header a load balancer puts before a connection's
 * bytes (`--proxy-protocol`; version 1 text or version 2 binary, as
 * HAProxy's `send-proxy` and `send-proxy-v2` send it). This side finds
 * where the header ends and bounds its size; `proxy-protocol-js` parses it.
 *
 * @module
 */
import {
  IPv4ProxyAddress,
  IPv6ProxyAddress,
  V1ProxyProtocol,
  V2ProxyProtocol,
} from "proxy-protocol-js";
import { PROXY_V1_MAX_BYTES, PROXY_V2_MAX_BYTES } from "../../lib/limits.ts";
import { parseIp } from "../../lib/net/cidr.ts";
import type { NetAddr } from "../../lib/types.ts";

/** What the first bytes of a connection hold. */
export type ProxyHeader =
  | { readonly kind: "more" }
  | { readonly kind: "invalid"; readonly reason: string }
  | {
    readonly kind: "ok";
    /** The header's length: the connection's own bytes follow. */
    readonly length: number;
    /** The client; absent for `LOCAL` (health checks) and `UNKNOWN`: use the peer. */
    readonly source?: NetAddr;
    /** The address the client connected to, with `source`. */
    readonly destination?: NetAddr;
  };

const V2_SIGNATURE = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);
const V1_SIGNATURE = new TextEncoder().encode("PROXY ");
const MORE = { kind: "more" } as const;

/** Whether `bytes` starts with `signature`, or is a beginning of it. */
function startsLike(bytes: Uint8Array, signature: Uint8Array): boolean {
  const n = Math.min(bytes.length, signature.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== signature[i]) return false;
  return true;
}

function invalid(reason: string): ProxyHeader {
  return { kind: "invalid", reason };
}

/**
 * Reads the PROXY header at the start of `bytes`: `more` until it is
 * whole, `invalid` for anything else or a header over its size limit.
 *
 * @example
 * ```ts
 * import { readProxyHeader } from "./proxy_header.ts";
 *
 * const bytes = new TextEncoder().encode("PROXY TCP4 192.0.2.7 10.0.0.1 50000 6080\r\nGET /");
 * const header = readProxyHeader(bytes);
 * // { kind: "ok", length: 42, source: { hostname: "192.0.2.7", port: 50000 }, ... }
 * ```
 */
export function readProxyHeader(bytes: Uint8Array): ProxyHeader {
  if (startsLike(bytes, V2_SIGNATURE)) return readV2(bytes);
  if (startsLike(bytes, V1_SIGNATURE)) return readV1(bytes);
  return invalid("no PROXY protocol header");
}

function readV2(bytes: Uint8Array): ProxyHeader {
  if (bytes.length < 16) return MORE;
  const length = 16 + ((bytes[14]! << 8) | bytes[15]!);
  if (length > PROXY_V2_MAX_BYTES) return invalid("PROXY v2 header too long");
  if (bytes.length < length) return MORE;
  let header: V2ProxyProtocol;
  try {
    header = V2ProxyProtocol.parse(bytes.subarray(0, length));
  } catch (error) {
    return invalid(`bad PROXY v2 header: ${(error as { message?: string }).message}`);
  }
  // LOCAL (0): the balancer's own connection, such as a health check.
  if (header.command !== 1) return { kind: "ok", length };
  const address = header.proxyAddress;
  if (address instanceof IPv4ProxyAddress) {
    return {
      kind: "ok",
      length,
      source: { hostname: address.sourceAddress.address.join("."), port: address.sourcePort },
      destination: {
        hostname: address.destinationAddress.address.join("."),
        port: address.destinationPort,
      },
    };
  }
  if (address instanceof IPv6ProxyAddress) {
    return {
      kind: "ok",
      length,
      source: { hostname: ipv6Text(address.sourceAddress.address), port: address.sourcePort },
      destination: {
        hostname: ipv6Text(address.destinationAddress.address),
        port: address.destinationPort,
      },
    };
  }
  // UNSPEC or a unix socket: nothing to name the client by.
  return { kind: "ok", length };
}

function readV1(bytes: Uint8Array): ProxyHeader {
  const end = crlfAt(bytes, PROXY_V1_MAX_BYTES);
  if (end < 0) {
    return bytes.length >= PROXY_V1_MAX_BYTES ? invalid("PROXY v1 header too long") : MORE;
  }
  const length = end + 2;
  const line = String.fromCharCode(...bytes.subarray(0, length));
  if (line.startsWith("PROXY UNKNOWN")) return { kind: "ok", length };
  let header: V1ProxyProtocol;
  try {
    header = V1ProxyProtocol.parse(line);
  } catch {
    return invalid("bad PROXY v1 header");
  }
  const size = header.inetProtocol === "TCP4" ? 4 : 16;
  const source = v1Peer(header.source, size);
  const destination = v1Peer(header.destination, size);
  if (!source || !destination || header.data) return invalid("bad PROXY v1 header");
  return { kind: "ok", length, source, destination };
}

/** The index of the first CRLF within `limit` bytes, or -1. */
function crlfAt(bytes: Uint8Array, limit: number): number {
  const n = Math.min(bytes.length, limit);
  for (let i = 0; i + 1 < n; i++) if (bytes[i] === 0x0d && bytes[i + 1] === 0x0a) return i;
  return -1;
}

/** A v1 address of the family the header names, or undefined. */
function v1Peer(peer: { ipAddress: string; port: number }, size: number): NetAddr | undefined {
  // TCP4 names dotted IPv4 addresses, TCP6 IPv6 ones (IPv4-mapped too).
  if (parseIp(peer.ipAddress)?.length !== size || !(peer.port <= 65535)) return undefined;
  return { hostname: peer.ipAddress, port: peer.port };
}

/** An IPv6 address's usual text: hex groups, the longest run of zeros as `::`. */
export function ipv6Text(bytes: ArrayLike<number>): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLength).join(":")}`;
}
