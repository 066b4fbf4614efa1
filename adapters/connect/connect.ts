/**
 * The default way to reach targets on the running runtime, chosen by
 * measurement (`bench/target_adapters.ts`; figures in `bench/README.md`,
 * "Figures behind design choices"): `Deno.connect` on Deno (faster and less
 * CPU target → client, a little slower client → target), `node:net`
 * elsewhere (`Bun.connect` was no faster). TLS
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
 * import { defaultConnect } from "./connect.ts";
 *
 * const connect = defaultConnect({ timeoutMs: 5000 });
 * const openVnc = () => connect({ kind: "tcp", hostname: "127.0.0.1", port: 5900 });
 * ```
 */
export function defaultConnect(options: ConnectOptions = {}): (target: Target) => Promise<Conn> {
  if (RUNTIME !== "deno") return (target) => connectNode(target, options);
  return (target) =>
    target.kind === "tcp" && target.tls
      ? connectNode(target, options)
      : connectDeno(target, options);
}
