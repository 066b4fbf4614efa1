/**
 * Before/after throughput of proxy builds, in one run: each argument is a
 * command that starts a proxy (the listen and target addresses are added),
 * and up and down runs alternate between them `--reps` times.
 *
 * Run: `node --import tsx bench/compare.ts [--mib 256] [--reps 5] CMD...`,
 * e.g. `"node /tmp/old/dist/cli.js" "node dist/cli.js"` with the old commit
 * checked out in a worktree at /tmp/old.
 *
 * @module
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { download, upload } from "./_measure.ts";
import { killAll, startCommand, startTarget, steadyHarness } from "./_proc.ts";

steadyHarness();
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { mib: { type: "string", default: "256" }, reps: { type: "string", default: "5" } },
});
const bytes = Number(values.mib) * 1024 * 1024;
const reps = Number(values.reps);
if (positionals.length === 0 || !(bytes > 0) || !(reps > 0)) {
  console.error("Usage: node --import tsx bench/compare.ts [--mib 256] [--reps 5] CMD...");
  process.exit(2);
}

const target = await startTarget(65536);
const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "websockify-compare-"));
const ports: number[] = [];
for (const [i, command] of positionals.entries()) {
  const log = path.join(logDir, `${i}.log`);
  ports.push((await startCommand(command.split(" "), "127.0.0.1:0", target.port, log, 65536)).port);
}

const results = positionals.map(() => ({ up: [] as number[], down: [] as number[] }));
for (let rep = 0; rep < reps; rep++) {
  for (const [i, port] of ports.entries()) {
    results[i]!.up.push(await upload({ kind: "ws", port }, bytes));
    results[i]!.down.push(await download({ kind: "ws", port }, bytes));
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log("| proxy | up MiB/s | down MiB/s |\n| --- | --- | --- |");
for (const [i, command] of positionals.entries()) {
  const { up, down } = results[i]!;
  console.log(`| \`${command}\` | ${median(up).toFixed(0)} | ${median(down).toFixed(0)} |`);
}
await target.stop();
killAll();
fs.rmSync(logDir, { recursive: true, force: true });
process.exit(0);
