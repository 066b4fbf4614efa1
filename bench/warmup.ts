/**
 * Echo latency of a fresh proxy, round trip by round trip: the first
 * `--first` (2000) 64-byte echoes on the first connection after the proxy
 * starts, then `--warm` (20,000) more, of which the last `--tail` (2000) give
 * the warm p50. Raw TCP to the same target runs the same loop in the same
 * run. The proxy runs alone on the last CPU and this client and the target on
 * the others (`steadyHarness()` in `_proc.ts` re-runs the script under
 * `taskset`), as in issue 16.
 *
 * Run: `node --import tsx bench/warmup.ts [--runtime deno,bun,node] [--root DIR,DIR]
 * [--reps N] [--first 2000] [--warm 20000] [--tail 2000] [--slow 10] [--flags "A|B"]`.
 * `--flags` compares runtime flags (variants separated by `|`, each put before
 * the entry point, e.g. `--flags "|--max-opt=1"` for none and one). With
 * several roots (another checkout with `dist/` built and `node_modules`
 * linked) the runs alternate root by root. For each run it prints p50, p99 and
 * max of the first round trips, the mean per block of 100 of them, the
 * slowest ones by index, and the warm p50.
 *
 * @module
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import process from "node:process";
import { parseArgs } from "node:util";
import { type Endpoint, open } from "./_client.ts";
import { SMALL } from "./_measure.ts";
import {
  buildDist,
  killAll,
  proxyCommand,
  ROOT,
  type ServerName,
  startCommand,
  startTarget,
  steadyHarness,
} from "./_proc.ts";

steadyHarness(true);

const { values } = parseArgs({
  options: {
    runtime: { type: "string", default: "deno,bun,node" },
    root: { type: "string", default: ROOT },
    reps: { type: "string", default: "1" },
    first: { type: "string", default: "2000" },
    warm: { type: "string", default: "20000" },
    tail: { type: "string", default: "2000" },
    slow: { type: "string", default: "10" },
    flags: { type: "string", default: "" },
  },
});
const roots = values.root.split(",").map((dir) => path.resolve(dir));
const reps = Number(values.reps);
const FIRST = Number(values.first);
const WARM = Number(values.warm);
const TAIL = Math.min(Number(values.tail), WARM);
const SLOW = Number(values.slow);
// Runtime flags to compare, `|`-separated variants, each put before the entry point.
const variants = values.flags.split("|").map((v) => v.split(" ").filter((w) => w !== ""));
const MSG = Buffer.alloc(SMALL, 0x61);
const REPLY_MS = 15_000;
/** Time allowed for `count` round trips even on a crowded machine: a hang, not a slow run. */
const runMs = (count: number) => 60_000 + 20 * count;

/** CPU nanoseconds the main thread of `pid` has run so far (`/proc/PID/task/PID/schedstat`). */
function threadNs(pid: number): number {
  return Number(fs.readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").split(" ")[0]);
}

/** CPU nanoseconds of all threads of `pid` so far. */
function processNs(pid: number): number {
  let ns = 0;
  for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[0]);
    } catch { /* thread ended */ }
  }
  return ns;
}

/**
 * Round-trip times in microseconds, by index, on one fresh link; with `pid`,
 * also the CPU microseconds the proxy's main thread spent on each (read
 * between round trips, outside the timed part), which the load of other
 * processes on the machine does not change as it changes wall-clock times.
 */
async function roundTrips(
  ep: Endpoint,
  count: number,
  pid?: number,
): Promise<Run> {
  const link = await open(ep, 15_000);
  const times = new Float64Array(count);
  const cpu = pid === undefined ? undefined : new Float64Array(count);
  const marks: number[] = [];
  const mark = (i: number) => {
    if (pid !== undefined && (i === 0 || i === FIRST || i === count - TAIL || i === count)) {
      marks.push(processNs(pid));
    }
  };
  try {
    link.send(Buffer.from("E"));
    const deadline = performance.now() + runMs(count);
    let expected = 0;
    let ns = pid === undefined ? 0 : threadNs(pid);
    for (let i = 0; i < count; i++) {
      mark(i);
      if (performance.now() > deadline) throw new Error(`only ${i} round trips in time`);
      const t0 = performance.now();
      link.send(MSG);
      expected += SMALL;
      await link.until(expected, REPLY_MS);
      times[i] = (performance.now() - t0) * 1000;
      if (cpu) {
        const next = threadNs(pid!);
        cpu[i] = (next - ns) / 1000;
        ns = next;
      }
    }
    mark(count);
  } finally {
    await link.close(15_000).catch(() => {});
  }
  // All threads (compiler and GC helpers too), first round trips and warm tail.
  const all = marks.length === 4
    ? [(marks[1]! - marks[0]!) / 1000, (marks[3]! - marks[2]!) / 1000]
    : undefined;
  return { times, cpu, all };
}

/** One link's round trips. */
interface Run {
  times: Float64Array;
  /** Proxy main-thread CPU µs per round trip. */
  cpu?: Float64Array;
  /** Proxy CPU µs, all threads: over the first round trips, over the warm tail. */
  all?: number[];
}

function quantile(values: Float64Array, q: number): number {
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

interface Summary {
  p50: number;
  p99: number;
  max: number;
  warm: number;
}

/** The mean per block of 100 of `values`, and the slowest indices. */
function shape(values: Float64Array): string {
  const blocks: string[] = [];
  for (let b = 0; b < values.length; b += 100) {
    const block = values.subarray(b, b + 100);
    blocks.push((block.reduce((a, x) => a + x, 0) / block.length).toFixed(0));
  }
  const slow = Array.from(values.keys()).sort((a, b) => values[b]! - values[a]!).slice(0, SLOW)
    .sort((a, b) => a - b).map((i) => `#${i} ${values[i]!.toFixed(0)}`);
  return `  mean per 100: ${blocks.join(" ")}\n  slowest: ${slow.join(", ")}`;
}

const sum = (values: Float64Array) => values.reduce((a, x) => a + x, 0);

function summarize(label: string, { times, cpu, all }: Run): Summary {
  const first = times.subarray(0, FIRST);
  const s = {
    p50: quantile(first, 0.5),
    p99: quantile(first, 0.99),
    max: quantile(first, 1),
    warm: quantile(times.subarray(times.length - TAIL), 0.5),
  };
  console.log(
    `${label}: first ${FIRST} p50 ${s.p50.toFixed(0)} p99 ${s.p99.toFixed(0)} max ` +
      `${s.max.toFixed(0)} µs; warm p50 ${s.warm.toFixed(0)} µs\n${shape(first)}`,
  );
  if (cpu) {
    const head = cpu.subarray(0, FIRST);
    const tail = cpu.subarray(cpu.length - TAIL);
    console.log(
      `  proxy main thread CPU µs per round trip: first ${FIRST} mean ` +
        `${(sum(head) / FIRST).toFixed(1)} p99 ${quantile(head, 0.99).toFixed(0)}; warm mean ` +
        `${(sum(tail) / TAIL).toFixed(1)}; all threads: first ${(all![0]! / FIRST).toFixed(1)},` +
        ` warm ${(all![1]! / TAIL).toFixed(1)}\n${shape(head)}`,
    );
  }
  return s;
}

process.on("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(130));
const target = await startTarget(65536);
const raw: Endpoint = { kind: "tcp", port: target.port };
const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "websockify-warmup-"));
const runtimes = values.runtime.split(",") as ServerName[];
if (runtimes.includes("node") && roots.includes(path.resolve(ROOT))) buildDist();
roots.forEach((root, i) => console.log(`- root ${i + 1}: ${root}`));
await roundTrips(raw, 2000); // this client's own warm-up, once
const rows: string[] = [];
for (let rep = 0; rep < reps; rep++) {
  for (const runtime of runtimes) {
    for (const [i, root] of roots.entries()) {
      for (const flags of variants) {
        const cmd = proxyCommand(runtime);
        const entry = [...cmd.slice(0, -1), ...flags, path.join(root, cmd.at(-1)!)];
        const log = path.join(logDir, `${runtime}.log`);
        const proxy = await startCommand(
          entry,
          "127.0.0.1:0",
          target.port,
          log,
          65536,
        );
        const variant = flags.length > 0 ? ` ${flags.join(" ")}` : "";
        const name = `${runtime}${variant} root ${i + 1} rep ${rep + 1}`;
        const ws: Endpoint = { kind: "ws", port: proxy.port };
        const via = summarize(name, await roundTrips(ws, FIRST + WARM, proxy.pid));
        await proxy.stop();
        const base = summarize(`raw (${name})`, await roundTrips(raw, FIRST + WARM));
        const r = (a: number, b: number) => (a / b).toFixed(1);
        rows.push(
          `| ${name} | ${r(via.p99, base.p99)}× (${via.p99.toFixed(0)} / ${
            base.p99.toFixed(0)
          }) | ` +
            `${r(via.warm, base.warm)}× (${via.warm.toFixed(0)} / ${base.warm.toFixed(0)}) |`,
        );
      }
    }
  }
}
console.log(
  `\n| run | p99 first ${FIRST}, proxy/raw (µs) | warm p50, proxy/raw (µs) |\n| --- | --- | --- |`,
);
console.log(rows.join("\n"));
await target.stop();
killAll();
fs.rmSync(logDir, { recursive: true, force: true });
process.exit(0);
