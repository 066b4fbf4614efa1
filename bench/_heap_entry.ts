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
import v8 from "node:v8";

const runtime = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };
process.on("SIGUSR2", () => {
  if (runtime.Bun) runtime.Bun.gc(true);
  else runtime.gc?.();
  // Bun's V8 shim reports one space; V8's spaces tell the young generation
  // (new_space) from the old.
  const spaces: Record<string, number> = {};
  if (!runtime.Bun) {
    for (const s of v8.getHeapSpaceStatistics()) spaces[s.space_name] = s.physical_space_size;
  }
  fs.writeFileSync(
    process.env.HEAP_REPORT!,
    JSON.stringify({ ...process.memoryUsage(), spaces }),
  );
});
await import(process.env.HEAP_CLI!);
