/**
 * `--target-proxy-protocol`: a PROXY protocol version 2 header, naming the
 * client, sent to the target before any payload; built by
 * `proxy-protocol-js`.
 *
 * @module
 */
import {
  Command,
  IPv4Address,
  IPv4ProxyAddress,
  IPv6Address,
  IPv6ProxyAddress,
  TransportProtocol,
  UnspecProxyAddress,
  V2ProxyProtocol,
} from "proxy-protocol-js";
import { parseIp, unmapped } from "../../lib/net/cidr.ts";
import type { Conn, ConnInfo, Target } from "../../lib/types.ts";

/** An IP address's bytes; an IPv4-mapped one (a dual-stack peer) as IPv4. */
function ip(text: string): Uint8Array | undefined {
  const bytes = parseIp(text);
  return bytes && unmapped(bytes);
}

/** An IPv4 address (4 bytes) as its IPv4-mapped IPv6 address. */
function mapped(bytes: Uint8Array): number[] {
  return bytes.length === 16 ? [...bytes] : [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...bytes];
}

/**
 * The header for `info`'s client: `PROXY` with its address and the one it
 * connected to (`info.local`; both IPv4, else both IPv6), or `LOCAL` when
 * the client has no IP address (a unix socket listener).
 *
 * @example
 * ```ts
 * import { proxyHeaderV2 } from "./proxy_header.ts";
 *
 * const header = proxyHeaderV2({
 *   remote: { hostname: "192.0.2.7", port: 50000 },
 *   local: { hostname: "10.0.0.1", port: 6080 },
 * });
 * console.log(header.length); // 28: 16 + two IPv4 addresses and ports
 * ```
 */
export function proxyHeaderV2(info: Pick<ConnInfo, "remote" | "local">): Uint8Array {
  const source = ip(info.remote.hostname);
  if (!source) {
    return new V2ProxyProtocol(Command.LOCAL, TransportProtocol.UNSPEC, new UnspecProxyAddress())
      .build();
  }
  const local = info.local && ip(info.local.hostname);
  const destination = local ?? new Uint8Array(source.length);
  const port = local ? info.local!.port : 0;
  const address = source.length === 4 && destination.length === 4
    ? new IPv4ProxyAddress(
      IPv4Address.createFrom([...source]),
      info.remote.port,
      IPv4Address.createFrom([...destination]),
      port,
    )
    : new IPv6ProxyAddress(
      IPv6Address.createFrom(mapped(source)),
      info.remote.port,
      IPv6Address.createFrom(mapped(destination)),
      port,
    );
  return new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, address).build();
}

/**
 * Wraps a connect function so that each new target connection first gets
 * the client's PROXY v2 header: written once, before the bridge writes
 * anything, so the payload path is unchanged.
 */
export function withProxyHeader(
  connect: (target: Target) => Promise<Conn>,
): (target: Target, info: ConnInfo) => Promise<Conn> {
  return async (target, info) => {
    const conn = await connect(target);
    try {
      const header = proxyHeaderV2(info);
      if (conn.writer) {
        await conn.writer.write(header);
      } else {
        const writer = conn.writable.getWriter();
        await writer.write(header);
        writer.releaseLock();
      }
    } catch (error) {
      conn.close();
      throw error;
    }
    return conn;
  };
}
