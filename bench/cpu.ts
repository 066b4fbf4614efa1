/**
 * What each process spends on one unit of work: CPU (user and system) and
 * minor page faults of the client, the target and the proxy, per handshake
 * and per MiB, read from `/proc/PID/stat` around each phase. Throughput on
 * two shared cores swings between runs; CPU per unit of work is steadier, and
 * page faults show allocator trouble that throughput alone hides (it found
 * glibc handing back and re-faulting the Node proxy's read buffers).
 *
 * Run: `node --import tsx bench/cpu.ts [--runtime deno,bun,node,lighttpd,python,relay] [--steps par,up,down]
 * [--root DIR,DIR] [--reps N] [--args="OPTIONS"]`, steps from `seq` (500 handshakes one
 * at a time), `par` (3000, 16 at a time), `up` and `down` (256 MiB), each run in order.
 * `--root` measures several checkouts (e.g. an old commit extracted with `dist/` built
 * and `node_modules` linked) in one run, alternating them `--reps` times per runtime;
 * `--args` passes space-separated options to every proxy (before its addresses);
 * `--pin` runs each proxy alone on the last CPU and this process and the target
 * on the others (`taskset`, as `bench/run.ts` does by default), so that the
 * proxy's own CPU bounds its rate. With `--reps` above 1, a last table gives
 * each proxy's medians and the spread of its total: on this machine one
 * build's repetitions spread by ±30 %, so compare medians of alternating runs.
 *
 * @module
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import type { Endpoint } from "./_client.ts";
import { download, handshakes, upload } from "./_measure.ts";
import { median } from "./_report.ts";
import {
  buildDist,
  cpuTimes,
  killAll,
  PEERS,
  proxyCommand,
  ROOT,
  type ServerName,
  startCommand,
  startProxy,
  startTarget,
  steadyHarness,
} from "./_proc.ts";

const { values } = parseArgs({
  options: {
    runtime: { type: "string", default: "deno,bun,node" },
    steps: { type: "string", default: "seq,par,up,down" },
    root: { type: "string", default: ROOT },
    reps: { type: "string", default: "1" },
    args: { type: "string", default: "" },
    pin: { type: "boolean", default: false },
  },
});
const pinning = steadyHarness(values.pin);
const roots = values.root.split(",").map((dir) => path.resolve(dir));
const reps = Number(values.reps);
const proxyArgs = values.args.split(" ").filter((a) => a !== "");
const MIB = 256;
const PHASE_MS = 60_000;

/** User and system CPU seconds and minor faults of `pid` so far. */
function usage(pid: number | "self"): [number, number, number] {
  const t = cpuTimes(pid);
  return [t.user, t.system, t.faults];
}

/** The proxy's cost per unit in each repetition of a label: user and system ms, and the rate. */
const repeats = new Map<string, { user: number; system: number; rate: number }[]>();

/** Runs `work` (which returns its unit count) and prints the cost per unit for each process. */
async function phase(
  label: string,
  unit: string,
  pids: [string, number | "self"][],
  work: () => Promise<{ units: number; rate: number; rateUnit: string }>,
): Promise<void> {
  const before = pids.map(([, pid]) => usage(pid));
  const { units, rate, rateUnit } = await work();
  const costs = pids.map(([, pid], i) =>
    usage(pid).map((v, k) => v - before[i]![k]!) as [number, number, number]
  );
  const cells = costs.map(([u, s, f]) => {
    const ms = (x: number) => (1000 * x / units).toFixed(3);
    return `${ms(u)} + ${ms(s)} ms/${unit}, ${(f / units).toFixed(1)} pf`;
  });
  console.log(`| ${label} | ${rate.toFixed(0)} ${rateUnit} | ${cells.join(" | ")} |`);
  const [user, system] = costs.at(-1)!.map((x) => 1000 * x / units) as [number, number];
  repeats.set(label, [...repeats.get(label) ?? [], { user, system, rate }]);
}

/** Medians of each label's repetitions, with the spread of the proxy's total. */
function summary(): string {
  const rows = [...repeats].map(([label, runs]) => {
    const totals = runs.map((r) => r.user + r.system);
    const f = (x: number) => x.toFixed(3);
    return `| ${label} | ${f(median(totals))} (${f(Math.min(...totals))}–${
      f(Math.max(...totals))
    }) | ${f(median(runs.map((r) => r.user)))} + ${f(median(runs.map((r) => r.system)))} | ${
      median(runs.map((r) => r.rate)).toFixed(0)
    } |`;
  });
  return [
    `\nThe proxy, medians of ${reps} repetitions (ms per connection or per MiB):\n`,
    "| runtime, step | total (min–max) | user + system | rate |",
    "| --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}

const target = await startTarget(65536);
const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "websockify-cpu-"));
const runtimes = values.runtime.split(",") as ServerName[];
if (runtimes.includes("node") && roots.includes(path.resolve(ROOT))) buildDist();
const opts = (proxyArgs.length > 0 ? `, options ${proxyArgs.join(" ")}` : "") +
  (pinning.proxy ? `, ${pinning.note}` : "");
console.log(`CPU (user + system) and minor page faults per unit of work${opts}:\n`);
roots.forEach((root, i) => console.log(`- root ${i + 1}: ${root}`));
console.log(
  "\n| runtime, step | rate | client | target | proxy |\n| --- | --- | --- | --- | --- |",
);
/** `name`'s proxy command, with its entry point (the last word) in `root`. */
const commandIn = (name: ServerName, root: string) => {
  const cmd = proxyCommand(name);
  return [...cmd.slice(0, -1), path.join(root, cmd.at(-1)!), ...proxyArgs];
};
const runs = runtimes.flatMap((name) =>
  Array.from({ length: reps }, () => roots.map((root, i) => ({ name, root, i }))).flat()
);
for (const { name: runtime, root, i } of runs) {
  const name = roots.length > 1 ? `${runtime} (root ${i + 1})` : runtime;
  const log = path.join(logDir, `${runtime}.log`);
  // The peers (`lighttpd`, `python`, `relay`) have no checkout to pick.
  const proxy = PEERS.includes(runtime) || runtime === "relay"
    ? await startProxy(runtime, target.port, log, 65536)
    : await startCommand(commandIn(runtime, root), "127.0.0.1:0", target.port, log, 65536);
  const ep: Endpoint = { kind: runtime === "relay" ? "tcp" : "ws", port: proxy.port };
  const pids: [string, number | "self"][] = [
    ["client", "self"],
    ["target", target.pid],
    ["proxy", proxy.pid],
  ];
  await handshakes(ep, 2000, 16, PHASE_MS); // warm-up: JIT costs fall by half over the first 2000
  await upload(ep, 16 * 1048576);
  await download(ep, 16 * 1048576);
  for (const step of values.steps.split(",")) {
    const shake = async (count: number, parallel: number) => {
      const r = await handshakes(ep, count, parallel, PHASE_MS);
      return { units: r.count, rate: r.perSecond, rateUnit: "conn/s" };
    };
    const move = async (fn: typeof upload) => {
      const perSecond = await fn(ep, MIB * 1048576);
      return { units: MIB, rate: perSecond, rateUnit: "MiB/s" };
    };
    if (step === "seq") await phase(`${name} seq`, "conn", pids, () => shake(500, 1));
    else if (step === "par") await phase(`${name} 16-way`, "conn", pids, () => shake(3000, 16));
    else if (step === "up") await phase(`${name} up`, "MiB", pids, () => move(upload));
    else if (step === "down") await phase(`${name} down`, "MiB", pids, () => move(download));
    else throw new Error(`Unknown step ${step}`);
  }
  await proxy.stop();
}
if (reps > 1) console.log(summary());
await target.stop();
killAll();
fs.rmSync(logDir, { recursive: true, force: true });
process.exit(0);
