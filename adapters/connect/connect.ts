/**
 * The default way to reach targets on the running runtime, chosen by
 * measurement (bench/target_adapters.ts): `Deno.connect` on Deno (7 % faster
 * and 18 % less CPU target → client, 8 % slower client → target, on
 * 2026-11-21), `node:net` elsewhere (`Bun.connect` was no faster). TLS
 * targets always use `node:tls`, one verified path for all.
 *
 * @module
 */
import { RUNTIME } from "../runtime.ts";
import type { Conn, Target } from "../../lib/types.ts";
import { connectDeno } from "./deno.ts";
import { connectNode, type ConnectOptions } from "./node.ts";

/**
 * Returns the connect function for this runtime.
 *
 * @example
 * ```ts
 * const connect = defaultConnect({ timeoutMs: 5000 });
 * const conn = await connect({ kind: "tcp", hostname: "127.0.0.1", port: 5900 });
 * ```
 */
export function defaultConnect(options: ConnectOptions = {}): (target: Target) => Promise<Conn> {
  if (RUNTIME !== "deno") return (target) => connectNode(target, options);
  return (target) =>
    target.kind === "tcp" && target.tls
      ? connectNode(target, options)
      : connectDeno(target, options);
}
