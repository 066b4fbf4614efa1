/**
 * The process's standard error as a {@link TextBatch}: every line the
 * command writes there goes through it, in order, once per event-loop turn.
 *
 * @module
 */
import process from "node:process";
import { TextBatch } from "./text_batch.ts";

let batch: TextBatch | undefined;

/**
 * The batch for stderr, made on first use. It looks `process.stderr.write`
 * up on each flush: the daemon child replaces it once ready.
 *
 * @example
 * ```ts
 * import { stderrBatch } from "./stderr.ts";
 *
 * const warn = (text: string) => stderrBatch().push(`websockify: ${text}\n`);
 * ```
 */
export function stderrBatch(): TextBatch {
  return batch ??= new TextBatch((text) => process.stderr.write(text));
}

/** Writes what is queued for stderr now. */
export function flushStderr(): void {
  batch?.flush();
}
