/**
 * Target-side connectors compared under the runtime running this file: the
 * proxy (`websockify()` from mod.ts) runs in-process once with `connectNode`
 * and once with the native connector (`connectDeno` / `connectBun`), in
 * alternating rounds. The WebSocket client (`ws`) and the TCP target both
 * live in one Node child (this file with `--child`), the same for both.
 *
 * Usage: `deno run -A bench/target_adapters.ts [--rounds 3] [--mib 256]`,
 * `bun bench/target_adapters.ts`, `node --import tsx bench/target_adapters.ts`.
 *
 * @module
 */
import { spawn } from "node:child_process";
import net from "node:net";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { connectBun } from "../adapters/connect/bun.ts";
import { connectDeno } from "../adapters/connect/deno.ts";
import { connectNode } from "../adapters/connect/node.ts";
import { RUNTIME } from "../adapters/runtime.ts";
import type { Conn, Target } from "../lib/types.ts";
import { websockify } from "../mod.ts";

const CHUNK = 64 * 1024;
const PINGS = 2000;
const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: { child: { type: "boolean" }, rounds: { type: "string" }, mib: { type: "string" } },
});
const BYTES = Number(args.mib ?? 256) * 1024 * 1024;

interface Result {
  up: number;
  down: number;
  p50: number;
  p99: number;
  /** Proxy CPU time (user + system, all threads) per direction, in ms. */
  upCpu: number;
  downCpu: number;
}

/** Splits a stream into lines; `next()` gives up after `ms`. */
function lines(stream: NodeJS.ReadableStream) {
  const queue: string[] = [];
  let buf = "";
  let wake = () => {};
  stream.setEncoding("utf8");
  stream.on("data", (d: string) => {
    const parts = (buf + d).split("\n");
    buf = parts.pop()!;
    queue.push(...parts);
    wake();
  });
  stream.on("end", () => (queue.push(""), wake()));
  return async (ms = 300_000): Promise<string> => {
    const end = Date.now() + ms;
    while (!queue.length) {
      if (Date.now() > end) throw new Error("child timed out");
      await new Promise<void>((r) => (wake = r, setTimeout(r, 1000)));
    }
    return queue.shift()!;
  };
}

// --- child: the target (mode byte u = sink, d = source, e = echo) and the client ---

function startTarget(): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (sock) => {
    sock.on("error", () => {});
    sock.once("data", async (first: Buffer) => {
      const mode = String.fromCharCode(first[0]!);
      if (mode === "e") {
        sock.write(first.subarray(1));
        sock.pipe(sock);
      } else if (mode === "u") {
        let got = first.length - 1;
        sock.on("data", (d: Buffer) => (got += d.length) >= BYTES && sock.end("k"));
      } else {
        const chunk = new Uint8Array(CHUNK);
        for (let sent = 0; sent < BYTES && !sock.destroyed; sent += CHUNK) {
          if (!sock.write(chunk)) await new Promise((r) => sock.once("drain", r));
        }
        sock.end();
      }
    });
  });
  return new Promise((r) =>
    server.listen(0, "127.0.0.1", () => r((server.address() as net.AddressInfo).port))
  );
}

async function client(port: number, mode: string): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, ["binary"], { perMessageDeflate: false });
  await new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject)));
  ws.send(new TextEncoder().encode(mode));
  return ws;
}

async function measure(port: number): Promise<Result> {
  const mibs = (t0: number) => BYTES / 1048576 / ((performance.now() - t0) / 1000);
  // Up: 64 messages in flight at most, until the target has counted them all.
  // "mark" lines let the parent sample its CPU time at each phase boundary.
  let ws = await client(port, "u");
  console.log("mark");
  let t0 = performance.now();
  await new Promise<void>((resolve) => {
    let sent = 0, inflight = 0;
    const chunk = new Uint8Array(CHUNK);
    const pump = () => {
      for (; inflight < 64 && sent < BYTES; sent += CHUNK, inflight++) {
        ws.send(chunk, () => (inflight--, pump()));
      }
    };
    ws.once("message", () => resolve());
    pump();
  });
  const up = mibs(t0);
  ws.close();
  // Down: count until every byte arrived.
  ws = await client(port, "d");
  console.log("mark");
  t0 = performance.now();
  await new Promise<void>((resolve) => {
    let got = 0;
    ws.on("message", (d: Buffer) => (got += d.length) >= BYTES && resolve());
  });
  const down = mibs(t0);
  console.log("mark");
  ws.close();
  // Latency: 64-byte round trips, one at a time, after a warm-up.
  ws = await client(port, "e");
  const times: number[] = [];
  const msg = new Uint8Array(64);
  for (let i = 0; i < PINGS + 200; i++) {
    const t = performance.now();
    await new Promise<void>((resolve) => {
      let got = 0;
      const on = (d: Buffer) => (got += d.length) >= 64 && (ws.off("message", on), resolve());
      ws.on("message", on);
      ws.send(msg);
    });
    if (i >= 200) times.push((performance.now() - t) * 1000);
  }
  ws.close();
  times.sort((a, b) => a - b);
  return { up, down, p50: times[PINGS * 0.5]!, p99: times[PINGS * 0.99]!, upCpu: 0, downCpu: 0 };
}

async function runChild() {
  console.log(await startTarget());
  const next = lines(process.stdin);
  for (let line = await next(); line; line = await next()) {
    console.log(JSON.stringify(await measure(Number(line))));
  }
  process.exit(0);
}

// --- parent: the proxies under test ---

async function runParent() {
  const connectors: [string, (t: Target) => Promise<Conn>][] = [[
    "node:net",
    (t) => connectNode(t),
  ]];
  if (RUNTIME === "deno") connectors.push(["Deno.connect", (t) => connectDeno(t)]);
  if (RUNTIME === "bun") connectors.push(["Bun.connect", (t) => connectBun(t)]);
  const file = fileURLToPath(import.meta.url);
  const child = spawn("node", ["--import", "tsx", file, "--child", "--mib", String(BYTES >> 20)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const next = lines(child.stdout!);
  const target = { kind: "tcp", hostname: "127.0.0.1", port: Number(await next(30_000)) } as const;
  const proxies = await Promise.all(
    connectors.map(([, connect]) => websockify({ target, connect })),
  );
  const results: Result[][] = connectors.map(() => []);
  const rounds = Number(args.rounds ?? 3);
  const agent = (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent;
  console.log(
    `${agent ?? `Node ${process.version}`}, ${BYTES >> 20} MiB each way, ${rounds} rounds`,
  );
  for (let round = 0; round <= rounds; round++) {
    for (const [i, proxy] of proxies.entries()) {
      child.stdin!.write(`${proxy.addr.port}\n`);
      const cpu: number[] = [];
      let line = await next();
      for (; line === "mark"; line = await next()) {
        const { user, system } = process.cpuUsage();
        cpu.push((user + system) / 1000);
      }
      const r: Result = {
        ...JSON.parse(line),
        upCpu: cpu[1]! - cpu[0]!,
        downCpu: cpu[2]! - cpu[1]!,
      };
      if (round === 0) continue; // warm-up
      results[i]!.push(r);
      console.log(`round ${round} ${connectors[i]![0]}: ${format(r).join(" | ")}`);
    }
  }
  child.stdin!.end();
  await Promise.all(proxies.map((p) => p.close()));
  const medians = results.map((rs) => median(rs));
  console.log(
    "\n| connector | up MiB/s | down MiB/s | p50 µs | p99 µs | up CPU ms | down CPU ms |",
  );
  console.log("|---|---|---|---|---|---|---|");
  for (const [i, m] of medians.entries()) {
    console.log(`| ${connectors[i]![0]} | ${format(m).join(" | ")} |`);
  }
  if (medians.length === 2) {
    const [a, b] = medians as [Result, Result];
    console.log(`| native/node | ${KEYS.map((k) => (b[k] / a[k]).toFixed(2)).join(" | ")} |`);
  }
}

const KEYS = ["up", "down", "p50", "p99", "upCpu", "downCpu"] as const;
const format = (r: Result) => KEYS.map((k) => r[k].toFixed(0));

function median(rs: Result[]): Result {
  const mid = (k: keyof Result) => rs.map((r) => r[k]).sort((a, b) => a - b)[rs.length >> 1]!;
  return Object.fromEntries(KEYS.map((k) => [k, mid(k)])) as unknown as Result;
}

if (args.child) await runChild();
else await runParent();
