/**
 * Where a proxy's memory per open connection goes: RSS (as `run.ts`
 * measures it) next to the JavaScript heap in use and reserved, after a full
 * collection, for `--conns` connections that each echoed once. The rest of
 * RSS is the runtime's native socket state and allocator. It told apart what
 * the proxy keeps per session (its objects, closures, suspended async
 * functions) from what the runtime keeps.
 *
 * Run: `node --import tsx bench/heap.ts [--runtime deno,bun,node] [--conns 9000]
 * [--root DIR] [--args="OPTIONS"] [--spaces] [--settle SECONDS]`; `--root`
 * measures another checkout (e.g. an old commit in a worktree, with `dist/`
 * built and `node_modules` linked); `--args` passes space-separated options to
 * the proxy (before its addresses); `--spaces` adds
 * each V8 heap space's growth (Deno and Node); `--settle` waits that long
 * before each measurement (idle, then with the connections open), which lets
 * V8's memory reducer give back the young generation a burst of sessions grew.
 *
 * @module
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { holdMany } from "./_measure.ts";
import {
  buildDist,
  killAll,
  memKiB,
  ROOT,
  type ServerName,
  startCommand,
  startTarget,
  steadyHarness,
} from "./_proc.ts";

steadyHarness();
const { values } = parseArgs({
  options: {
    runtime: { type: "string", default: "deno,bun,node" },
    conns: { type: "string", default: "9000" },
    root: { type: "string", default: ROOT },
    args: { type: "string", default: "" },
    spaces: { type: "boolean", default: false },
    settle: { type: "string", default: "0" },
  },
});
const conns = Number(values.conns);
const settleMs = Number(values.settle) * 1000;
const root = path.resolve(values.root);
const runtimes = values.runtime.split(",") as ServerName[];
const proxyArgs = values.args.split(" ").filter((a) => a !== "");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "websockify-heap-"));
const report = path.join(dir, "report.json");
const entry = path.join(ROOT, "bench", "_heap_entry.ts");
const bin = (tool: string) => path.join(ROOT, "node_modules", ".bin", tool);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function command(name: ServerName): string[] {
  if (name === "deno") {
    return [bin("deno"), "run", "-A", "--v8-flags=--expose-gc", entry, ...proxyArgs];
  }
  if (name === "bun") return [bin("bun"), entry, ...proxyArgs];
  if (name === "node") {
    return [process.execPath, "--expose-gc", "--import", "tsx", entry, ...proxyArgs];
  }
  throw new Error(`heap.ts measures deno, bun and node, not ${name}`);
}

interface Usage {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  spaces: Record<string, number>;
}

/** Asks the proxy for its memory after a collection; RSS is read from /proc. */
async function usage(pid: number): Promise<Usage> {
  fs.rmSync(report, { force: true });
  process.kill(pid, "SIGUSR2");
  for (let i = 0; i < 200 && !fs.existsSync(report); i++) await sleep(50);
  await sleep(100); // the file is written in one call; let it land
  const m = JSON.parse(fs.readFileSync(report, "utf8"));
  return { ...m, rss: memKiB(pid) * 1024 };
}

try {
  if (root === ROOT) buildDist();
  const target = await startTarget(conns * 2 + 1000);
  const opts = proxyArgs.length > 0 ? `, options ${proxyArgs.join(" ")}` : "";
  const settled = settleMs > 0 ? `, measured after ${values.settle} s open` : "";
  console.log(`Memory per open connection, ${conns} connections, root ${root}${opts}${settled}:\n`);
  console.log("| runtime | RSS KiB | heap used KiB | heap reserved KiB | external KiB |");
  console.log("| --- | --- | --- | --- | --- |");
  for (const name of runtimes) {
    process.env.HEAP_CLI = path.join(root, name === "node" ? "dist/cli.js" : "cli.ts");
    process.env.HEAP_REPORT = report;
    const log = path.join(dir, `${name}.log`);
    const proxy = await startCommand(command(name), "127.0.0.1:0", target.port, log, conns + 1000);
    const ep = { kind: "ws", port: proxy.port } as const;
    await holdMany(ep, 500, 60_000, async () => {}); // warm-up: JIT and pools
    // Settled before as after: the warm-up's young generation is not counted.
    await sleep(Math.max(500, settleMs));
    const before = await usage(proxy.pid);
    const { during: after } = await holdMany(ep, conns, 120_000, async () => {
      await sleep(settleMs);
      return usage(proxy.pid);
    });
    const per = (k: Exclude<keyof Usage, "spaces">) =>
      ((after[k] - before[k]) / conns / 1024).toFixed(1);
    console.log(
      `| ${name} | ${per("rss")} | ${per("heapUsed")} | ${per("heapTotal")} | ${per("external")} |`,
    );
    if (values.spaces) {
      const grew = Object.entries(after.spaces)
        .map(([k, v]) => [k, (v - (before.spaces[k] ?? 0)) / conns / 1024] as const)
        .filter(([, kib]) => Math.abs(kib) >= 0.05)
        .map(([k, kib]) => `${k} ${kib.toFixed(1)}`);
      console.log(`|   V8 spaces, physical KiB per connection: ${grew.join(", ") || "none"} |`);
    }
    await proxy.stop();
  }
  await target.stop();
} finally {
  killAll();
}
