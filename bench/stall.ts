/**
 * A stalled reader on one side while the other side floods: how much the
 * proxy's RSS grows during the stall, and whether every byte arrives once
 * the reader reads again, after a warm-up connection has echoed 16 MiB. Down: the target writes `--mib` MiB while the
 * WebSocket client has paused reading. Up: the client sends `--mib` MiB while
 * the target has paused reading. Each stall lasts `--stall` ms.
 *
 * Run: `node --import tsx bench/stall.ts [--runtime deno,bun,node] [--mib 1024] [--stall 3000]`.
 *
 * @module
 */
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { timeout } from "./_client.ts";
import { buildDist, killAll, memKiB, type ServerName, startProxy, steadyHarness } from "./_proc.ts";

steadyHarness();
const { values } = parseArgs({
  options: {
    runtime: { type: "string", default: "deno,bun,node" },
    mib: { type: "string", default: "1024" },
    stall: { type: "string", default: "3000" },
  },
});
const BYTES = Number(values.mib) * 1024 * 1024;
const STALL_MS = Number(values.stall);
const CHUNK = 64 * 1024;
const LIMIT_MS = 120_000;
const WARMUP = 16 * 1024 * 1024;
const runtimes = values.runtime.split(",") as ServerName[];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A target that echoes its first connection (the warm-up) and runs `onConn` for the next. */
async function target(onConn: (sock: net.Socket) => void): Promise<net.Server> {
  let first = true;
  const server = net.createServer((sock) => {
    if (!first) return onConn(sock);
    first = false;
    sock.on("error", () => {});
    sock.pipe(sock);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return server;
}

/**
 * Echoes `WARMUP` bytes through a first connection, so that what is measured
 * is the stalled connection, not the JIT and heap a fresh process grows on
 * its first one (a long-running proxy has those already).
 */
async function warmUp(port: number): Promise<void> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, ["binary"]);
  await new Promise((r, j) => ws.once("open", r).once("error", j));
  let echoed = 0;
  const back = new Promise<void>((resolve) =>
    ws.on("message", (d: Buffer) => (echoed += d.byteLength) >= WARMUP && resolve())
  );
  const block = Buffer.alloc(CHUNK, 1);
  for (let sent = 0; sent < WARMUP; sent += CHUNK) {
    while (ws.bufferedAmount > 1024 * 1024) await sleep(1);
    ws.send(block);
  }
  await timeout(back, LIMIT_MS, () => "warm-up echo");
  ws.close();
  await new Promise((r) => ws.once("close", r));
}

/** Peak RSS growth over `base` while `ms` pass, sampled every 20 ms. */
async function peakGrowth(pid: number, base: number, ms: number): Promise<number> {
  let peak = base;
  for (const end = Date.now() + ms; Date.now() < end;) {
    peak = Math.max(peak, memKiB(pid));
    await sleep(20);
  }
  return peak - base;
}

/** Starts the proxy to the target on `port`, lets it settle, opens one client. */
async function start(name: ServerName, port: number, dir: "down" | "up", logDir: string) {
  const proxy = await startProxy(name, port, path.join(logDir, `${name}-${dir}.log`), 4096);
  await warmUp(proxy.port);
  await sleep(300);
  const base = memKiB(proxy.pid);
  return { proxy, base, ws: new WebSocket(`ws://127.0.0.1:${proxy.port}/`, ["binary"]) };
}

/** Target floods, client stalls. */
async function down(name: ServerName, logDir: string) {
  const block = Buffer.alloc(CHUNK, 0x5a);
  let sent = 0;
  const server = await target(async (sock) => {
    sock.on("error", () => {});
    for (; sent < BYTES && !sock.destroyed; sent += CHUNK) {
      if (!sock.write(block)) await new Promise((r) => sock.once("drain", r));
    }
    sock.end();
  });
  const port = (server.address() as net.AddressInfo).port;
  const { proxy, base, ws } = await start(name, port, "down", logDir);
  try {
    let received = 0;
    const done = new Promise<void>((resolve, reject) => {
      ws.on("message", (data: Buffer) => {
        received += data.byteLength;
        if (received >= BYTES) resolve();
      });
      ws.on("error", reject);
      ws.on("close", () => (received >= BYTES ? resolve() : reject(new Error("closed early"))));
    });
    await new Promise((r) => ws.once("open", r));
    ws.pause();
    const growth = await peakGrowth(proxy.pid, base, STALL_MS);
    const stalledAt = sent;
    ws.resume();
    await timeout(done, LIMIT_MS, () => "down: all bytes");
    ws.close();
    return { growth, stalledAt, received };
  } finally {
    await proxy.stop();
    server.close();
  }
}

/** Client floods, target stalls. */
async function up(name: ServerName, logDir: string) {
  let received = 0;
  let peer: net.Socket | undefined;
  let arrived = () => {};
  const all = new Promise<void>((resolve) => (arrived = resolve));
  const server = await target((sock) => {
    peer = sock.pause(); // explicitly paused: the data listener does not resume it
    sock.on("data", (d: Buffer) => {
      received += d.byteLength;
      if (received >= BYTES) arrived();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  const { proxy, base, ws } = await start(name, port, "up", logDir);
  try {
    await new Promise((r) => ws.once("open", r));
    const block = Buffer.alloc(CHUNK, 0xa5);
    let sent = 0;
    const sending = (async () => {
      while (sent < BYTES && ws.readyState === WebSocket.OPEN) {
        while (ws.bufferedAmount > 1024 * 1024) await sleep(1);
        ws.send(block);
        sent += CHUNK;
      }
    })();
    const growth = await peakGrowth(proxy.pid, base, STALL_MS);
    const stalledAt = sent;
    peer?.resume();
    await timeout(Promise.all([sending, all]), LIMIT_MS, () => "up: all bytes");
    ws.close();
    return { growth, stalledAt, received };
  } finally {
    await proxy.stop();
    server.close();
  }
}

const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "websockify-stall-"));
if (runtimes.includes("node")) buildDist();
console.log(
  `Stalled reader, ${values.mib} MiB flood, ${STALL_MS} ms stall (proxy RSS growth during it):\n`,
);
console.log(
  "| runtime | direction | RSS growth, MiB | flooder got through before the stall ended | arrived |",
);
console.log("| --- | --- | --- | --- | --- |");
let failed = false;
for (const name of runtimes) {
  for (const [dir, run] of [["down", down], ["up", up]] as const) {
    try {
      const r = await run(name, logDir);
      const ok = r.received === BYTES;
      failed ||= !ok;
      console.log(
        `| ${name} | ${dir} | ${(r.growth / 1024).toFixed(1)} | ${
          (r.stalledAt / 1048576).toFixed(1)
        } MiB | ${ok ? "all" : `${r.received} of ${BYTES} B`} |`,
      );
    } catch (error) {
      failed = true;
      console.log(`| ${name} | ${dir} | ERROR: ${String(error)} | | |`);
    }
  }
}
killAll();
if (!failed) fs.rmSync(logDir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
