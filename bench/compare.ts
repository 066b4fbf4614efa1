/**
 * Before/after throughput and 16-way handshake rate of proxy builds, in one run: each argument is a
 * command that starts a proxy (the listen and target addresses are added),
 * and up and down runs alternate between them `--reps` times.
 *
 * Run: `node --import tsx bench/compare.ts [--mib 256] [--reps 5] CMD...`,
 * e.g. `"node /tmp/old/dist/cli.js" "node dist/cli.js"` with the old commit
 * checked out in a worktree at /tmp/old. Proxy options go in CMD, split at
 * spaces: `"node dist/cli.js --metrics=9100"`.
 *
 * @module
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { download, handshakes, upload } from "./_measure.ts";
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

const results = positionals.map(() => ({
  up: [] as number[],
  down: [] as number[],
  shakes: [] as number[],
}));
for (let rep = 0; rep < reps; rep++) {
  for (const [i, port] of ports.entries()) {
    const ep = { kind: "ws", port } as const;
    results[i]!.up.push(await upload(ep, bytes));
    results[i]!.down.push(await download(ep, bytes));
    results[i]!.shakes.push((await handshakes(ep, 1500, 16, 30_000)).perSecond);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log("| proxy | up MiB/s | down MiB/s | 16-way handshakes/s |\n| --- | --- | --- | --- |");
for (const [i, command] of positionals.entries()) {
  const { up, down, shakes } = results[i]!;
  const cells = [up, down, shakes].map((xs) => median(xs).toFixed(0));
  console.log(`| \`${command}\` | ${cells.join(" | ")} |`);
}
await target.stop();
killAll();
fs.rmSync(logDir, { recursive: true, force: true });
process.exit(0);
