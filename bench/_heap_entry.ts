/**
 * Runs the proxy at `$HEAP_CLI` (a `cli.ts` or `dist/cli.js`) and, on
 * SIGUSR2, collects garbage and writes `process.memoryUsage()` as JSON to
 * `$HEAP_REPORT`. For `heap.ts`; started with `--expose-gc` where the runtime
 * needs it.
 *
 * @module
 */
import fs from "node:fs";
import process from "node:process";

const runtime = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };
process.on("SIGUSR2", () => {
  if (runtime.Bun) runtime.Bun.gc(true);
  else runtime.gc?.();
  fs.writeFileSync(process.env.HEAP_REPORT!, JSON.stringify(process.memoryUsage()));
});
await import(process.env.HEAP_CLI!);
