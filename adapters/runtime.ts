/**
 * Which runtime runs this process, found once: the one place that tells
 * Deno, Bun and Node apart (`lib/` never asks). Deno and Bun both offer
 * `node:*` modules and `process`, so only their own globals tell them apart.
 *
 * @module
 */

/** The runtimes this project runs on. */
export type Runtime = "deno" | "bun" | "node";

/** The runtime of this process. */
export const RUNTIME: Runtime = "Deno" in globalThis
  ? "deno"
  : "Bun" in globalThis
  ? "bun"
  : "node";
