/**
 * Where a proxy's CPU goes per connection set-up: connect, WebSocket
 * handshake, one 64-byte echo, clean close (the `handshakes` measurement of
 * `run.ts`), with the proxy's JavaScript profiler on for the measured phase
 * only. Node and Deno are profiled through their V8 inspector (`Profiler`
 * domain) after a warm-up; Bun, whose inspector speaks another protocol,
 * with `--cpu-prof` for its whole run (start-up and warm-up included).
 * Prints the top frames by self time as shares of the busy (non-idle)
 * samples and as microseconds per connection, and writes each
 * `.cpuprofile` to `--dir` for Chrome DevTools.
 *
 * With `--alloc` (Node and Deno), what the proxy allocates on the JavaScript
 * heap instead: V8's sampling heap profiler (one sample per `--interval`
 * bytes), counting objects that died young too, so the figure is
 * allocation, not what stays: what the young-generation collector pays for
 * (`node --trace-gc-nvp` agreed, 36 KB per connection on Node). Prints the
 * allocation sites and the source files on their stacks in bytes per
 * connection, and writes a `.heapprofile`.
 *
 * Run: `node --import tsx bench/setup_profile.ts [--runtime deno,bun,node]
 * [--conns 10000] [--parallel 16] [--interval 250] [--dir DIR] [--args="OPTIONS"]
 * [--alloc]`.
 *
 * @module
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { type Inspector, inspectorFromLog, source } from "./_inspector.ts";
import type { Endpoint } from "./_client.ts";
import { handshakes } from "./_measure.ts";
import {
  buildDist,
  killAll,
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
    conns: { type: "string", default: "10000" },
    parallel: { type: "string", default: "16" },
    interval: { type: "string", default: "250" },
    dir: { type: "string", default: "" },
    args: { type: "string", default: "" },
    top: { type: "string", default: "25" },
    alloc: { type: "boolean", default: false },
  },
});
const conns = Number(values.conns);
const parallel = Number(values.parallel);
const interval = Number(values.interval);
const top = Number(values.top);
const proxyArgs = values.args.split(" ").filter((a) => a !== "");
const dir = values.dir || fs.mkdtempSync(path.join(os.tmpdir(), "websockify-prof-"));
fs.mkdirSync(dir, { recursive: true });
const bin = (tool: string) => path.join(ROOT, "node_modules", ".bin", tool);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

interface HeapNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

function command(name: ServerName): string[] {
  if (name === "deno") return [bin("deno"), "run", "-A", "--inspect=127.0.0.1:0", "cli.ts"];
  if (name === "node") return [process.execPath, "--inspect=127.0.0.1:0", "dist/cli.js"];
  if (name === "bun") {
    return [
      bin("bun"),
      "--cpu-prof",
      `--cpu-prof-dir=${dir}`,
      `--cpu-prof-name=bun.cpuprofile`,
      `--cpu-prof-interval=${interval}`,
      "cli.ts",
    ];
  }
  throw new Error(`setup_profile.ts profiles deno, bun and node, not ${name}`);
}

/**
 * Self time per frame, and time per source file with any of its frames on
 * the stack (inclusive, each file counted once per sample), as shares of
 * the busy samples and µs per connection.
 */
function summarize(profile: Profile, count: number): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  let total = 0;
  // Bun samples only while JavaScript runs and marks no idle time: its time
  // deltas include the idle gaps, so each sample counts as one interval.
  const sampledIdle = profile.nodes.some((n) => n.callFrame.functionName === "(idle)");
  for (const [i, id] of profile.samples.entries()) {
    const dt = sampledIdle ? profile.timeDeltas[i] ?? 0 : interval;
    self.set(id, (self.get(id) ?? 0) + dt);
    total += dt;
  }
  const frames = new Map<string, number>();
  const files = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of self) {
    const f = byId.get(id)!.callFrame;
    if (f.functionName === "(idle)") {
      idle += us;
      continue;
    }
    const where = f.url ? ` ${source(f.url)}:${f.lineNumber + 1}` : "";
    const key = `${f.functionName || "(anonymous)"}${where}`;
    frames.set(key, (frames.get(key) ?? 0) + us);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const url = byId.get(at)!.callFrame.url;
      if (url) seen.add(source(url));
    }
    for (const file of seen) files.set(file, (files.get(file) ?? 0) + us);
  }
  const busy = total - idle;
  const cells = (us: number): [string, string] => [
    `${(us / busy * 100).toFixed(1)} %`,
    (us / count).toFixed(1),
  ];
  return [
    `busy ${(busy / 1000).toFixed(0)} ms of ${(total / 1000).toFixed(0)} ms sampled, ` +
    `${(busy / count).toFixed(0)} µs per connection\n`,
    ...topTables("frame (self time)", frames, "share of busy", "µs per connection", cells),
    "",
    ...topTables("source file (inclusive)", files, "share of busy", "µs per connection", cells),
  ].join("\n");
}

/** A markdown table of the `top` largest entries of `map`, two figures each. */
function topTables(
  what: string,
  map: Map<string, number>,
  first: string,
  second: string,
  cells: (value: number) => [string, string],
): string[] {
  return [
    `| ${what} | ${first} | ${second} |`,
    "| --- | --- | --- |",
    ...[...map].sort((a, b) => b[1] - a[1]).slice(0, top).map(([key, value]) =>
      `| \`${key}\` | ${cells(value).join(" | ")} |`
    ),
  ];
}

/** Bytes per site (self) and per source file on the stack (inclusive). */
function summarizeAlloc(head: HeapNode, count: number): string {
  const sites = new Map<string, number>();
  const files = new Map<string, number>();
  let total = 0;
  const walk = (node: HeapNode, stack: string[]) => {
    const f = node.callFrame;
    const file = f.url ? source(f.url) : "";
    const here = file ? [...stack, file] : stack;
    if (node.selfSize > 0) {
      total += node.selfSize;
      const key = `${f.functionName || "(anonymous)"}${file ? ` ${file}:${f.lineNumber + 1}` : ""}`;
      sites.set(key, (sites.get(key) ?? 0) + node.selfSize);
      for (const name of new Set(here)) files.set(name, (files.get(name) ?? 0) + node.selfSize);
    }
    for (const child of node.children) walk(child, here);
  };
  walk(head, []);
  const cells = (bytes: number): [string, string] => [
    `${(bytes / total * 100).toFixed(1)} %`,
    (bytes / count).toFixed(0),
  ];
  return [
    `${(total / count / 1024).toFixed(1)} KiB allocated per connection (sampled)\n`,
    ...topTables("allocation site (self)", sites, "share", "bytes per connection", cells),
    "",
    ...topTables("source file (inclusive)", files, "share", "bytes per connection", cells),
  ].join("\n");
}

/** Samples the heap allocations of `conns` set-ups through `session`. */
async function allocations(session: Inspector, ep: Endpoint, name: ServerName): Promise<void> {
  await session.send("HeapProfiler.enable");
  await session.send("HeapProfiler.startSampling", {
    samplingInterval: interval,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  const result = await handshakes(ep, conns, parallel, 300_000);
  const { profile } = (await session.send("HeapProfiler.stopSampling")) as {
    profile: { head: HeapNode };
  };
  const file = path.join(dir, `${name}.heapprofile`);
  fs.writeFileSync(file, JSON.stringify(profile));
  console.log(`\n### ${name}: ${result.count} connections, ${parallel} at a time (${file})\n`);
  console.log(summarizeAlloc(profile.head, result.count));
}

if (values.alloc && values.runtime.includes("bun")) {
  console.error("--alloc profiles deno and node: Bun's inspector speaks another protocol");
  process.exit(2);
}
try {
  if (values.runtime.includes("node")) buildDist();
  const target = await startTarget(4096);
  for (const name of values.runtime.split(",") as ServerName[]) {
    const log = path.join(dir, `${name}.log`);
    const cmd = [...command(name), ...proxyArgs];
    const proxy = await startCommand(cmd, "127.0.0.1:0", target.port, log, 4096);
    const ep = { kind: "ws", port: proxy.port } as const;
    const warm = await handshakes(ep, 2000, parallel, 60_000); // JIT and pools
    let session: Inspector | undefined;
    if (values.alloc) {
      session = await inspectorFromLog(log);
      await allocations(session, ep, name);
      session.close();
      await proxy.stop();
      continue;
    }
    if (name !== "bun") {
      session = await inspectorFromLog(log);
      await session.send("Profiler.enable");
      await session.send("Profiler.setSamplingInterval", { interval });
      await session.send("Profiler.start");
    }
    const result = await handshakes(ep, conns, parallel, 300_000);
    let profile: Profile;
    const file = path.join(dir, `${name}.cpuprofile`);
    if (session) {
      profile = ((await session.send("Profiler.stop")) as { profile: Profile }).profile;
      session.close();
      fs.writeFileSync(file, JSON.stringify(profile));
      await proxy.stop();
    } else {
      await proxy.stop();
      for (let i = 0; i < 100 && !fs.existsSync(file); i++) await sleep(100);
      profile = JSON.parse(fs.readFileSync(file, "utf8"));
    }
    console.log(
      `\n### ${name}: ${result.count} connections, ${parallel} at a time, ` +
        `${result.perSecond.toFixed(0)}/s (${file})\n`,
    );
    // Bun's profile covers its start-up and the warm-up too.
    console.log(summarize(profile, result.count + (session ? 0 : warm.count)));
  }
  await target.stop();
} finally {
  killAll();
}
