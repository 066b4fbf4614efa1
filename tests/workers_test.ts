/**
 * `--workers=N`: several processes serve one port (cluster on Node,
 * SO_REUSEPORT on Deno and Bun), print one banner, tell their sessions
 * apart, are restarted when one dies, stop together, and never outlive
 * their supervisor.
 */
import assert from "node:assert/strict";
import net from "node:net";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import {
  alive,
  assertStartError,
  type CliProcess,
  closed,
  openClient,
  receive,
  runCli,
  sleep,
  spawnCli,
  startEchoServer,
  type TcpServer,
  waitFor,
  within,
} from "./_harness.ts";

let echo: TcpServer;
before(async () => (echo = await startEchoServer()));
after(() => echo.close());

/** Starts `--workers=2` on a free port; resolves once both workers listen. */
async function twoWorkers(): Promise<{ proc: CliProcess; port: number }> {
  const proc = spawnCli(["--workers=2", "127.0.0.1:0", `127.0.0.1:${echo.port}`]);
  const port = await proc.port();
  await waitFor(() => proc.stderr.includes("Worker listening on "), 15000, "worker 2 listening");
  return { proc, port };
}

/** The pids of the workers the supervisor started, in order. */
const workerPids = (stderr: string) =>
  [...stderr.matchAll(/Worker (\d) of 2 started \(pid (\d+)\)/g)].map((m) => ({
    k: Number(m[1]),
    pid: Number(m[2]),
  }));

async function echoSession(port: number, i: number): Promise<void> {
  const ws = await openClient(port, ["binary"]);
  const got = receive(ws, 1);
  ws.send(new Uint8Array([i]));
  assert.deepEqual(await within(5000, got), new Uint8Array([i]));
  ws.close();
  await closed(ws);
}

/** "connected", or the error code of a connection attempt to `port`. */
function connectResult(port: number): Promise<string> {
  return within(
    5000,
    new Promise<string>((resolve) => {
      const sock = net.connect(port, "127.0.0.1", () => (sock.destroy(), resolve("connected")));
      sock.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? ""));
    }),
  );
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
}

/** Bun applies a timeout per test only. */
const SLOW = { timeout: 60000 };

describe("--workers", SLOW, () => {
  test("--workers=2 serves one port from two processes and stops them all", SLOW, async () => {
    const { proc, port } = await twoWorkers();
    try {
      for (let i = 0; i < 24; i++) await echoSession(port, i);
      await waitFor(() => (proc.stderr.match(/: closed /g) ?? []).length === 24, 5000, "closes");
      assert.equal(
        (proc.stderr.match(/WebSocket server settings:/g) ?? []).length,
        1,
        "one banner",
      );
      // Each worker numbers its sessions from 1 and prefixes them: no id twice.
      const ids = [...proc.stderr.matchAll(/ INFO (?:(w\d) )?(#\d+) [^\n]*: open /g)];
      assert.equal(ids.length, 24, proc.stderr);
      assert.ok(ids.every((m) => m[1] !== undefined), proc.stderr);
      assert.equal(new Set(ids.map((m) => `${m[1]} ${m[2]}`)).size, 24, proc.stderr);
      const pids = workerPids(proc.stderr).map((w) => w.pid);
      assert.ok(pids.length >= 1 && pids.every(alive), proc.stderr);
      assert.equal(await within(10000, proc.kill("SIGTERM"), "exit"), 0);
      await waitFor(() => !pids.some(alive), 5000, "workers gone");
    } finally {
      await proc.kill("SIGKILL");
    }
  });

  test("a worker killed with SIGKILL is started again and serves", SLOW, async () => {
    const { proc, port } = await twoWorkers();
    const pids = () => workerPids(proc.stderr).filter((w) => w.k === 2).map((w) => w.pid);
    try {
      const [old] = pids();
      assert.ok(old, proc.stderr);
      process.kill(old, "SIGKILL");
      await waitFor(() => pids().length === 2, 15000, "worker 2 restarted");
      const restarted = proc.stderr.length;
      const listening = () => (proc.stderr.match(/w2 Worker listening on /g) ?? []).length;
      await waitFor(() => listening() === 2, 15000, "new worker 2 listening");
      assert.ok(alive(pids()[1]!) && !alive(old));
      // Connections spread over the workers; the new worker 2 gets one soon.
      const served = () => /w2 #\d+ [^\n]*: open /.test(proc.stderr.slice(restarted));
      for (let i = 0; i < 40 && !served(); i++) await echoSession(port, i);
      assert.ok(served(), proc.stderr);
    } finally {
      killAll(pids());
      await proc.kill("SIGKILL");
    }
  });

  test("workers exit when the supervisor is killed with SIGKILL", SLOW, async () => {
    const { proc, port } = await twoWorkers();
    const pids = workerPids(proc.stderr).map((w) => w.pid);
    try {
      assert.ok(pids.length >= 1 && pids.every(alive), proc.stderr);
      await proc.kill("SIGKILL");
      await waitFor(() => !pids.some(alive), 15000, "orphaned workers gone");
      // Nothing serves the port any more.
      let refused = false;
      for (let i = 0; i < 50 && !refused; i++) {
        refused = (await connectResult(port)) === "ECONNREFUSED";
        if (!refused) await sleep(100);
      }
      assert.ok(refused, "port still served");
    } finally {
      killAll(pids);
    }
  });

  test(
    "--workers on a port another socket holds, even with SO_REUSEPORT, fails",
    SLOW,
    async () => {
      // What orphaned workers of an old instance would look like (Node 20 ignores reusePort).
      const holder = net.createServer();
      await new Promise<void>((resolve) =>
        holder.listen({ host: "127.0.0.1", port: 0, reusePort: true } as net.ListenOptions, resolve)
      );
      try {
        const { port } = holder.address() as net.AddressInfo;
        const result = await runCli(["--workers=2", `127.0.0.1:${port}`, `127.0.0.1:${echo.port}`]);
        assertStartError(result, /Cannot listen on 127\.0\.0\.1:\d+: address already in use/);
      } finally {
        await new Promise((resolve) => holder.close(resolve));
      }
    },
  );
});
