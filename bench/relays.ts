/**
 * What each runtime's sockets cost per connection before any WebSocket work:
 * the bare relay (`_relay.ts`, `node:net`) under Node, Deno and Bun, and the
 * same relay on Deno's and Bun's own socket APIs (`_relay_native.ts`), each
 * pinned alone on the last CPU as `run.ts` pins proxies. Prints the
 * connect + echo + close rate and the relay's CPU per connection (user +
 * system) for 3000 connections 16 at a time and 500 one at a time, after a
 * warm-up of 2000; variants alternate `--reps` times.
 *
 * Run: `node --import tsx bench/relays.ts [--reps 3]`.
 *
 * @module
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { handshakes } from "./_measure.ts";
import { cpuTimes, killAll, ROOT, startCommand, startTarget, steadyHarness } from "./_proc.ts";

const pinning = steadyHarness(true);
const { values } = parseArgs({ options: { reps: { type: "string", default: "3" } } });
const bin = (tool: string) => path.join(ROOT, "node_modules", ".bin", tool);
const VARIANTS: [string, string[]][] = [
  ["node, node:net", [process.execPath, "--import", "tsx", "bench/_relay.ts"]],
  ["deno, node:net", [bin("deno"), "run", "-A", "bench/_relay.ts"]],
  ["deno, Deno.listen", [bin("deno"), "run", "-A", "bench/_relay_native.ts"]],
  ["bun, node:net", [bin("bun"), "bench/_relay.ts"]],
  ["bun, Bun.listen", [bin("bun"), "bench/_relay_native.ts"]],
];
const STEPS = [["16-way", 3000, 16], ["sequential", 500, 1]] as const;

const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "websockify-relays-"));
const target = await startTarget(8192);
console.log(`Bare relays, ${pinning.note}:\n`);
console.log("| relay | step | conn/s | CPU per connection, ms (user + system) |");
console.log("| --- | --- | --- | --- |");
try {
  for (let rep = 0; rep < Number(values.reps); rep++) {
    for (const [name, cmd] of VARIANTS) {
      const log = path.join(logDir, `${rep}.log`);
      const relay = await startCommand(cmd, "127.0.0.1:0", target.port, log, 8192);
      const ep = { kind: "tcp", port: relay.port } as const;
      await handshakes(ep, 2000, 16, 60_000);
      for (const [step, count, parallel] of STEPS) {
        const before = cpuTimes(relay.pid);
        const result = await handshakes(ep, count, parallel, 60_000);
        const after = cpuTimes(relay.pid);
        const ms = (s: number) => (1000 * s / result.count).toFixed(3);
        console.log(
          `| ${name} | ${step} | ${result.perSecond.toFixed(0)} | ` +
            `${ms(after.user - before.user)} + ${ms(after.system - before.system)} |`,
        );
      }
      await relay.stop();
    }
  }
} finally {
  await target.stop();
  killAll();
  fs.rmSync(logDir, { recursive: true, force: true });
}
