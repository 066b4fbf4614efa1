/**
 * `--workers`: aggregate target→client throughput over many connections at
 * once, for N = 1 and N = 2 proxy processes, per runtime, in one run.
 *
 * Run: `node --import tsx bench/workers.ts [--conns 8] [--mib 64]`
 */
import { spawn } from "node:child_process";
import net from "node:net";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = `${ROOT}node_modules/.bin`;
const { values } = parseArgs({
  options: { conns: { type: "string", default: "8" }, mib: { type: "string", default: "64" } },
});
const CONNS = Number(values.conns);
const BYTES = Number(values.mib) * 1024 * 1024;
const RUNTIMES: Record<string, string[]> = {
  deno: [`${BIN}/deno`, "run", "-A", "cli.ts"],
  bun: [`${BIN}/bun`, "cli.ts"],
  node: ["node", "--import", "tsx", "cli.ts"],
};

/** A target that sends BYTES to every connection, then ends it. */
const chunk = new Uint8Array(65536).fill(7);
const source = net.createServer((sock) => {
  let left = BYTES / chunk.length;
  const pump = () => {
    while (left > 0) {
      left--;
      if (!sock.write(chunk)) return void sock.once("drain", pump);
    }
    sock.end();
  };
  pump();
});
await new Promise<void>((r) => source.listen(0, "127.0.0.1", r));
const target = `127.0.0.1:${(source.address() as net.AddressInfo).port}`;

/** Starts the proxy and resolves with its port and a stop function. */
function startProxy(cmd: string[], workers: number): Promise<{ port: number; stop(): void }> {
  const child = spawn(cmd[0]!, [...cmd.slice(1), `--workers=${workers}`, "127.0.0.1:0", target], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner: ${err}`)), 20000);
    child.stderr!.on("data", (d) => {
      err += d;
      const m = /Listen on [^\n]*:(\d+)/.exec(err);
      // Give the other workers a moment to start listening too.
      if (m) {
        clearTimeout(timer);
        setTimeout(() => resolve({ port: Number(m[1]), stop: () => child.kill("SIGTERM") }), 1500);
      }
    });
  });
}

/** MiB/s of CONNS parallel downloads through the proxy at `port`. */
async function aggregate(port: number): Promise<number> {
  const started = performance.now();
  await Promise.all(Array.from({ length: CONNS }, () =>
    new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, ["binary"]);
      let got = 0;
      ws.on("message", (d: Uint8Array) => (got += d.byteLength));
      ws.on("close", () => got === BYTES ? resolve() : reject(new Error(`got ${got}`)));
      ws.on("error", reject);
    })));
  return (CONNS * BYTES) / 1048576 / ((performance.now() - started) / 1000);
}

console.log(`${CONNS} connections × ${values.mib} MiB, target → client, aggregate MiB/s\n`);
console.log("| runtime | N=1 | N=2 | N=2 / N=1 |\n| --- | --- | --- | --- |");
for (const [name, cmd] of Object.entries(RUNTIMES)) {
  const rates: number[] = [];
  for (const workers of [1, 2]) {
    const proxy = await startProxy(cmd, workers);
    try {
      await aggregate(proxy.port); // warm-up
      rates.push(await aggregate(proxy.port));
    } finally {
      proxy.stop();
    }
  }
  const [one, two] = rates as [number, number];
  console.log(`| ${name} | ${one.toFixed(0)} | ${two.toFixed(0)} | ${(two / one).toFixed(2)}× |`);
}
source.close();
