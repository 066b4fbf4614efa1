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
 * Run: `node --import tsx bench/setup_profile.ts [--runtime deno,bun,node]
 * [--conns 10000] [--parallel 16] [--interval 250] [--dir DIR] [--args="OPTIONS"]`.
 *
 * @module
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import WebSocket from "ws";
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

/** A minimal Chrome DevTools Protocol session over the inspector WebSocket. */
async function inspector(url: string) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  let next = 1;
  const waiting = new Map<number, (r: unknown) => void>();
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data)) as { id?: number; result?: unknown };
    if (msg.id !== undefined) waiting.get(msg.id)?.(msg.result);
  });
  return {
    send(method: string, params: object = {}): Promise<unknown> {
      const id = next++;
      ws.send(JSON.stringify({ id, method, params }));
      return new Promise((resolve) => waiting.set(id, resolve));
    },
    close: () => ws.close(),
  };
}

/** A frame's source, shortened: `lib/x.js`, `node_modules/pkg/x.js`, `node:net`. */
function source(url: string): string {
  const i = url.indexOf("/node_modules/");
  if (i >= 0) return url.slice(i + 1);
  return url.replace(/^.*\/(dist\/)?(?=(lib|adapters|cli)[./])/, "");
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
  const rows = (map: Map<string, number>) =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, top).map(([key, us]) =>
      `| \`${key}\` | ${(us / busy * 100).toFixed(1)} % | ${(us / count).toFixed(1)} |`
    );
  return [
    `busy ${(busy / 1000).toFixed(0)} ms of ${(total / 1000).toFixed(0)} ms sampled, ` +
    `${(busy / count).toFixed(0)} µs per connection\n`,
    "| frame (self time) | share of busy | µs per connection |",
    "| --- | --- | --- |",
    ...rows(frames),
    "",
    "| source file (inclusive) | share of busy | µs per connection |",
    "| --- | --- | --- |",
    ...rows(files),
  ].join("\n");
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
    let session: Awaited<ReturnType<typeof inspector>> | undefined;
    if (name !== "bun") {
      const url = /ws:\/\/\S+/.exec(fs.readFileSync(log, "utf8"))?.[0];
      if (!url) throw new Error(`no inspector URL in ${log}`);
      session = await inspector(url);
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
