/**
 * A reload is all or nothing: every part reads and checks its new state
 * first, and only when all succeeded does each put it in use; otherwise
 * every part keeps what it had.
 *
 * @module
 */
import { ConfigError, errorText } from "../errors.ts";
import type { Reload } from "../plugins/plugins.ts";

/** One named part of a reload. */
export interface ReloadStep<Name extends string = string> {
  readonly name: Name;
  readonly prepare: Reload;
}

/**
 * Prepares every step at once; when all succeeded, puts them in use and
 * resolves with their names, else rejects with a {@link ConfigError} naming
 * each failed part and its reason, having changed nothing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reloadAll } from "./reload.ts";
 *
 * let keys = "old";
 * const steps = [{
 *   name: "keys",
 *   prepare: () => Promise.resolve(() => void (keys = "new")),
 * }, {
 *   name: "certificate",
 *   prepare: () => Promise.reject(new Error("cannot read cert.pem")),
 * }];
 * await assert.rejects(reloadAll(steps), /certificate: cannot read cert\.pem/);
 * assert.equal(keys, "old");
 * assert.deepEqual(await reloadAll(steps.slice(0, 1)), ["keys"]);
 * assert.equal(keys, "new");
 * ```
 */
export async function reloadAll<Name extends string>(
  steps: readonly ReloadStep<Name>[],
): Promise<Name[]> {
  // A prepare that throws before returning its promise counts as rejecting.
  const results = await Promise.allSettled(steps.map(async (step) => await step.prepare()));
  const failed = results.flatMap((result, i) =>
    result.status === "rejected" ? [`${steps[i]!.name}: ${errorText(result.reason)}`] : []
  );
  if (failed.length > 0) throw new ConfigError(failed.join("; "));
  for (const result of results) (result as PromiseFulfilledResult<() => void>).value();
  return steps.map((step) => step.name);
}
