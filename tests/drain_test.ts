/**
 * `--drain-timeout` and `Websockify.drain()`: on SIGTERM the proxy stops
 * accepting at once, live sessions keep flowing for up to the window, the
 * process exits 0 as soon as the last one ends, and what outlives the window
 * is closed with 1001; with `--workers` every worker drains.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import process from "node:process";
import type WebSocket from "ws";
import {
  cliCommand,
  type CliProcess,
  closed,
  freePort,
  openClient,
  pattern,
  receive,
  spawnCli,
  spawnCommand,
  startEchoServer,
  startProxy,
  type TcpServer,
  waitFor,
  which,
  within,
} from "./_harness.ts";
import { after, before, describe, needs, test } from "./_skip.ts";

const SLOW = { timeout: 60000 };

let echo: TcpServer;
const procs: CliProcess[] = [];
before(async () => (echo = await startEchoServer()));
after(async () => {
  await Promise.all(procs.map((p) => p.kill("SIGKILL")));
  await echo.close();
});

/** Resolves true when a TCP connect to `port` is refused, false when it is accepted. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.once("connect", () => {
      sock.destroy();
      resolve(false);
    });
    sock.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"));
  });
}

/** Waits (bounded) until new connections to `port` are refused. */
async function untilRefused(port: number): Promise<void> {
  const end = Date.now() + 10000;
  while (!(await refused(port))) {
    if (Date.now() > end) throw new Error(`port ${port} still accepts connections`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Sends `n` bytes through the echo target and checks they come back unchanged. */
async function flows(ws: WebSocket, n: number, seed: number): Promise<void> {
  const data = pattern(n, seed);
  const back = receive(ws, n);
  ws.send(data);
  assert.deepEqual(await within(10000, back, "echo"), data);
}

/** Sends `sig` without waiting (process.kill: Deno's child.kill reports no exit code). */
function signal(proc: CliProcess, sig: "SIGTERM" | "SIGINT"): void {
  process.kill(proc.child.pid!, sig);
}

/** Starts the CLI and resolves with its port once it listens. */
async function cli(args: string[]): Promise<{ proc: CliProcess; port: number }> {
  const proc = spawnCli([...args, "127.0.0.1:0", `127.0.0.1:${echo.port}`]);
  procs.push(proc);
  return { proc, port: await proc.port() };
}

describe("drain() in the library", () => {
  test("refuses new clients, keeps a live session, resolves when it ends", SLOW, async () => {
    const proxy = await startProxy(`127.0.0.1:${echo.port}`);
    try {
      const ws = await openClient(proxy.addr.port);
      await flows(ws, 4096, 1);
      assert.equal(proxy.draining, false);
      const drained = proxy.drain(60);
      assert.equal(proxy.draining, true);
      await untilRefused(proxy.addr.port);
      // The session keeps flowing both ways during the window.
      for (let i = 0; i < 3; i++) await flows(ws, 65536, i);
      const started = Date.now();
      const code = closed(ws);
      ws.close(1000);
      await within(10000, drained, "drain after the last session");
      assert.ok(Date.now() - started < 10000);
      assert.equal((await code).code, 1000);
      assert.equal(proxy.sessions, 0);
    } finally {
      await proxy.close();
    }
  });

  test("closes a session that outlives the window with 1001", SLOW, async () => {
    const proxy = await startProxy(`127.0.0.1:${echo.port}`);
    try {
      const ws = await openClient(proxy.addr.port);
      await flows(ws, 1024, 2);
      const code = closed(ws);
      const drained = proxy.drain(1);
      await flows(ws, 1024, 3);
      await within(15000, drained, "drain window");
      assert.equal((await within(5000, code, "close")).code, 1001);
    } finally {
      await proxy.close();
    }
  });

  test("close() during a drain ends it at once", SLOW, async () => {
    const proxy = await startProxy(`127.0.0.1:${echo.port}`);
    try {
      const ws = await openClient(proxy.addr.port);
      const code = closed(ws);
      const drained = proxy.drain(600);
      await flows(ws, 1024, 4);
      await within(10000, proxy.close(), "close");
      await within(5000, drained, "drain");
      assert.equal((await code).code, 1001);
    } finally {
      await proxy.close();
    }
  });
});

describe("--drain-timeout", () => {
  test("SIGTERM: refused at once, the session flows, exit 0 when it ends", SLOW, async () => {
    const { proc, port } = await cli(["--drain-timeout=60"]);
    const ws = await openClient(port);
    await flows(ws, 4096, 5);
    signal(proc, "SIGTERM");
    await waitFor(() => proc.stderr.includes("Draining 1 session(s) for up to 60 s"), 10000);
    await untilRefused(port);
    for (let i = 0; i < 3; i++) await flows(ws, 65536, i);
    const started = Date.now();
    ws.close(1000);
    assert.equal(await within(20000, proc.exited, "exit after the last session"), 0);
    assert.ok(Date.now() - started < 30000, "well before the window ends");
    assert.match(proc.stderr, /Drain over after [\d.]+ s: 0 of 1 session\(s\) cut/);
  });

  test("a session that outlives the window is closed with 1001, exit 0", SLOW, async () => {
    const { proc, port } = await cli(["--drain-timeout=1.5"]);
    const ws = await openClient(port);
    const code = closed(ws);
    signal(proc, "SIGTERM");
    await waitFor(() => proc.stderr.includes("Draining 1 session(s)"), 10000);
    await flows(ws, 4096, 6);
    assert.equal((await within(15000, code, "1001")).code, 1001);
    assert.equal(await within(15000, proc.exited, "exit"), 0);
    assert.match(proc.stderr, /Drain over after [\d.]+ s: 1 of 1 session\(s\) cut with 1001/);
  });

  test("a second signal during the drain closes at once", SLOW, async () => {
    const { proc, port } = await cli(["--drain-timeout=600"]);
    const ws = await openClient(port);
    const code = closed(ws);
    signal(proc, "SIGTERM");
    await waitFor(() => proc.stderr.includes("Draining 1 session(s)"), 10000);
    await flows(ws, 1024, 7);
    signal(proc, "SIGTERM");
    assert.equal((await within(15000, code, "1001")).code, 1001);
    assert.equal(await within(15000, proc.exited, "exit"), 0);
  });

  test("SIGINT closes at once even with a drain window", SLOW, async () => {
    const { proc, port } = await cli(["--drain-timeout=600"]);
    const ws = await openClient(port);
    const code = closed(ws);
    signal(proc, "SIGINT");
    assert.equal((await within(15000, code, "1001")).code, 1001);
    assert.equal(await within(15000, proc.exited, "exit"), 0);
  });

  test("without it, SIGTERM closes sessions with 1001 at once", SLOW, async () => {
    const { proc, port } = await cli([]);
    const ws = await openClient(port);
    const code = closed(ws);
    signal(proc, "SIGTERM");
    assert.equal((await within(15000, code, "1001")).code, 1001);
    assert.equal(await within(15000, proc.exited, "exit"), 0);
    assert.doesNotMatch(proc.stderr, /Draining/);
  });

  test("--workers=2: SIGTERM drains every worker, exit 0 when done", SLOW, async () => {
    const { proc, port } = await cli(["--workers=2", "--drain-timeout=60"]);
    await waitFor(() => proc.stderr.includes("Worker listening on "), 15000, "worker 2");
    const clients: WebSocket[] = [];
    for (let i = 0; i < 6; i++) clients.push(await openClient(port));
    for (const [i, ws] of clients.entries()) await flows(ws, 1024, i);
    signal(proc, "SIGTERM");
    // Each worker drains its own sessions: one start line per worker.
    const starts = () => proc.stderr.match(/Draining \d+ session\(s\) for up to 60 s/g) ?? [];
    await waitFor(() => starts().length === 2, 10000, "both workers draining");
    await untilRefused(port);
    for (const [i, ws] of clients.entries()) await flows(ws, 65536, i);
    const started = Date.now();
    for (const ws of clients) ws.close(1000);
    assert.equal(await within(30000, proc.exited, "exit after the last session"), 0);
    assert.ok(Date.now() - started < 40000, "well before the window ends");
    assert.doesNotMatch(proc.stderr, /restarting/);
    assert.equal(
      (proc.stderr.match(/Drain over after [\d.]+ s: 0 of \d+ session/g) ?? []).length,
      2,
    );
  });
});

const ACTIVATE = which("systemd-socket-activate");

describe("--drain-timeout under socket activation", {
  skip: needs("systemd-socket-activate", ACTIVATE !== undefined, "apt-get install systemd"),
  timeout: 60000,
}, () => {
  test("SIGTERM stops accepting on the passed socket and drains", async () => {
    const port = await freePort();
    // systemd-socket-activate binds, then execs the command (same pid) on the first connection.
    const proc = spawnCommand([
      ACTIVATE!,
      ...["-l", `127.0.0.1:${port}`, "--"],
      ...cliCommand(),
      ...["--drain-timeout=60", `127.0.0.1:${echo.port}`],
    ]);
    procs.push(proc);
    // Retried until the activator has bound the port and started the proxy (bounded).
    let ws: WebSocket | undefined;
    for (let i = 0; i < 50 && !ws; i++) {
      ws = await within(10000, openClient(port), "open").catch(() => undefined);
      if (!ws) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(ws, proc.stderr);
    await flows(ws, 4096, 8);
    signal(proc, "SIGTERM");
    await waitFor(() => proc.stderr.includes("Draining 1 session(s)"), 10000, "draining");
    await untilRefused(port);
    await flows(ws, 65536, 9);
    ws.close(1000);
    assert.equal(await within(20000, proc.exited, "exit after the last session"), 0);
    assert.match(proc.stderr, /0 of 1 session\(s\) cut/);
  });
});

describe("--drain-timeout with --inetd", () => {
  test("SIGTERM stops accepting on the socket from fd 0 and drains", SLOW, async () => {
    // A plain Node parent passes its listening fd as the child's stdin and
    // keeps no copy, then forwards SIGTERM and SIGINT.
    const [cmd, ...pre] = cliCommand();
    const args = [...pre, "--inetd", "--drain-timeout=60", `127.0.0.1:${echo.port}`];
    const script = `
      const net = require("node:net");
      const { spawn } = require("node:child_process");
      const srv = net.createServer().listen(0, "127.0.0.1", () => {
        const child = spawn(${JSON.stringify(cmd)}, ${JSON.stringify(args)},
          { stdio: [srv._handle.fd, "inherit", "inherit"] });
        console.log(srv.address().port);
        srv.close();
        for (const s of ["SIGTERM", "SIGINT"]) process.on(s, () => child.kill(s));
        child.on("exit", (c) => process.exit(c ?? 1));
      });`;
    const parent = spawn("node", ["-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    parent.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const exited = new Promise<number | null>((r) => parent.once("exit", (code) => r(code)));
    try {
      const port = await within(
        10000,
        new Promise<number>((r) => parent.stdout.once("data", (d) => r(Number(String(d))))),
      );
      await waitFor(() => stderr.includes("proxying from"), 15000, "start");
      const ws = await openClient(port);
      await flows(ws, 4096, 10);
      process.kill(parent.pid!, "SIGTERM");
      await waitFor(() => stderr.includes("Draining 1 session(s)"), 10000, "draining");
      await untilRefused(port);
      await flows(ws, 65536, 11);
      ws.close(1000);
      assert.equal(await within(20000, exited, "exit after the last session"), 0);
      assert.match(stderr, /0 of 1 session\(s\) cut/);
    } finally {
      if (parent.exitCode === null) process.kill(parent.pid!, "SIGINT");
      await within(15000, exited, "parent exit").catch(() => parent.kill("SIGKILL"));
    }
  });
});
