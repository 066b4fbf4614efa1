/**
 * Name resolution for `--allow-target`: every address a target's host name
 * resolves to, so that the rules (`lib/plugins/target_rules.ts`) can pick
 * one they allow and the connect goes to exactly that address.
 *
 * @module
 */
import dns from "node:dns/promises";

/**
 * Every address `hostname` resolves to, as the system resolver orders them.
 *
 * @example
 * ```ts
 * import { lookupAddresses } from "./resolve.ts";
 *
 * console.log(await lookupAddresses("localhost")); // [ "127.0.0.1", ... ]
 * ```
 */
export async function lookupAddresses(hostname: string): Promise<string[]> {
  const all = await dns.lookup(hostname, { all: true });
  return all.map((a) => a.address);
}
