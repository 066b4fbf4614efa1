/**
 * Sessions end to end: connect failures, close rules in both directions,
 * fragments, heartbeat, IPv6 and unix targets, shutdown, many clients, logs.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { StopSignal } from "../lib/bridge/stop_signal.ts";
import { createLogger } from "../mod.ts";
import { encodeFrame, rawConnect } from "./_frames.ts";
import {
  closed,
  openClient,
  pattern,
  receive,
  sleep,
  startEchoServer,
  startProxy,
  startTcpServer,
  waitFor,
  within,
} from "./_harness.ts";
import { describe, NO_IPV6, test } from "./_skip.ts";

/** Collects everything a socket sends until it ends. */
function collect(sock: net.Socket): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  sock.on("data", (d: Uint8Array) => chunks.push(d));
  return new Promise((resolve) =>
    sock.once("end", () => resolve(new Uint8Array(Buffer.concat(chunks))))
  );
}

describe("session close rules", () => {
  test("an unreachable target gets 101 then close 1011", async () => {
    const gone = await startTcpServer(() => {});
    await gone.close();
    const proxy = await startProxy(`127.0.0.1:${gone.port}`);
    try {
      const ws = await openClient(proxy.addr.port, ["binary"]);
      assert.deepEqual(await within(5000, closed(ws)), {
        code: 1011,
        reason: "Failed to connect to downstream server",
      });
    } finally {
      await proxy.close();
    }
  });

  test("target EOF flushes everything, then closes 1000 Target closed", async () => {
    const data = pattern(3 * 1024 * 1024 + 17, 5);
    const target = await startTcpServer((sock) => sock.end(data));
    const proxy = await startProxy(`127.0.0.1:${target.port}`);
    try {
      const ws = await openClient(proxy.addr.port, ["binary"]);
      const chunks: Uint8Array[] = [];
      ws.on("message", (d: Uint8Array) => chunks.push(d));
      assert.deepEqual(await within(10000, closed(ws)), { code: 1000, reason: "Target closed" });
      assert.deepEqual(new Uint8Array(Buffer.concat(chunks)), data);
    } finally {
      await proxy.close();
      await target.close();
    }
  });

  test("a client close delivers its data and half-closes the target", async () => {
    let received: Promise<Uint8Array> | undefined;
    const target = await startTcpServer((sock) => {
      received = collect(sock);
      received.then(() => sock.end());
    });
    const proxy = await startProxy(`127.0.0.1:${target.port}`);
    try {
      const ws = await openClient(proxy.addr.port, ["binary"]);
      const data = pattern(2 * 1024 * 1024, 9);
      for (let i = 0; i < data.length; i += 50_000) ws.send(data.subarray(i, i + 50_000));
      ws.close(1000, "done");
      assert.deepEqual(await within(5000, closed(ws)), { code: 1000, reason: "done" });
      await waitFor(() => received !== undefined);
      assert.deepEqual(await within(5000, received!, "target EOF"), data);
      await waitFor(() => proxy.sessions === 0, 5000, "session end");
    } finally {
      await proxy.close();
      await target.close();
    }
  });

  test("after a client close, a target that does not close is cut after about 5 s", {
    timeout: 30000,
  }, async () => {
    // The target reads the half-close but keeps its side open, writing a byte every 100 ms:
    // once the proxy has closed the connection, a write draws a reset.
    let targetSock: net.Socket | undefined;
    let gotEof = false;
    let cut: number | undefined;
    let ticker: ReturnType<typeof setInterval> | undefined;
    const target = await startTcpServer((sock) => {
      targetSock = sock;
      sock.on("error", () => {});
      sock.on("close", () => (cut ??= performance.now()));
      sock.on("end", () => (gotEof = true));
      sock.resume();
      ticker = setInterval(() => sock.writable && sock.write("."), 100);
    });
    const proxy = await startProxy(`127.0.0.1:${target.port}`);
    try {
      const ws = await openClient(proxy.addr.port, ["binary"]);
      await waitFor(() => targetSock !== undefined, 5000, "target connection");
      ws.close(1000, "done");
      await within(5000, closed(ws), "client close");
      const clientClosed = performance.now();
      await waitFor(() => gotEof, 5000, "half-close reaches the target");
      await sleep(Math.max(0, clientClosed + 1000 - performance.now()));
      assert.equal(cut, undefined, "the target was cut within 1 s of the client close");
      assert.equal(proxy.sessions, 1);
      await waitFor(() => cut !== undefined, 10000, "target cut");
      assert.ok(cut! - clientClosed > 1000, `cut ${(cut! - clientClosed).toFixed(0)} ms after`);
      await waitFor(() => proxy.sessions === 0, 5000, "session end");
    } finally {
      clearInterval(ticker);
      await proxy.close();
      await target.close();
    }
  });

  test("a client that does not answer the close frame is cut off after 5 s", {
    timeout: 20000,
  }, async () => {
    const target = await startTcpServer((sock) => sock.end());
    const proxy = await startProxy(`127.0.0.1:${target.port}`);
    try {
      const raw = await rawConnect(proxy.addr.port, { "Sec-WebSocket-Protocol": "binary" });
      const frame = await within(5000, raw.next(), "close frame");
      assert.equal(frame?.opcode, 0x8);
      const sent = performance.now();
      // No answer: the next read is the proxy dropping the connection.
      assert.equal(await within(12000, raw.next(), "drop"), null);
      const waited = performance.now() - sent;
      assert.ok(waited > 4000 && waited < 10000, `dropped after ${waited.toFixed(0)} ms`);
    } finally {
      await proxy.close();
      await target.close();
    }
  });

  test("fragmented messages reach the target in order, a ping between fragments", async () => {
    let received: Promise<Uint8Array> | undefined;
    const target = await startTcpServer((sock) => (received = collect(sock)));
    const proxy = await startProxy(`127.0.0.1:${target.port}`);
    try {
      const raw = await rawConnect(proxy.addr.port, { "Sec-WebSocket-Protocol": "binary" });
      const enc = (s: string) => new TextEncoder().encode(s);
      raw.send(encodeFrame(0x2, enc("frag"), { fin: false }));
      raw.send(encodeFrame(0x9, enc("ping in between")));
      raw.send(encodeFrame(0x0, enc("men"), { fin: false }));
      raw.send(encodeFrame(0x0, enc("ted"), { fin: true }));
      assert.equal((await within(5000, raw.next(), "pong"))?.opcode, 0xa);
      raw.send(encodeFrame(0x8, new Uint8Array([0x03, 0xe8])));
      await waitFor(() => received !== undefined);
      assert.equal(new TextDecoder().decode(await within(5000, received!)), "fragmented");
      raw.sock.destroy();
    } finally {
      await proxy.close();
      await target.close();
    }
  });

  test("websockify.close() closes live sessions with 1001", async () => {
    const echo = await startEchoServer();
    const proxy = await startProxy(`127.0.0.1:${echo.port}`);
    const ws = await openClient(proxy.addr.port, ["binary"]);
    const done = closed(ws);
    await within(10000, proxy.close(), "close");
    assert.equal((await within(5000, done)).code, 1001);
    await echo.close();
  });
});

describe("StopSignal", () => {
  test("StopSignal calls each listener once, skips removed ones and ignores late ones", () => {
    const stop = new StopSignal();
    const calls: string[] = [];
    const a = () => calls.push("a");
    const b = () => calls.push("b");
    for (let i = 0; i < 1000; i++) stop.addEventListener("abort", () => void i);
    stop.addEventListener("abort", a);
    stop.addEventListener("abort", b);
    stop.removeEventListener("abort", b);
    assert.equal(stop.aborted, false);
    stop.abort();
    stop.abort();
    stop.addEventListener("abort", () => calls.push("late"));
    assert.equal(stop.aborted, true);
    assert.deepEqual(calls, ["a"]);
  });
});

describe("heartbeat", () => {
  test("a client that answers pings stays connected", async () => {
    const echo = await startEchoServer();
    const proxy = await startProxy(`127.0.0.1:${echo.port}`, { heartbeat: 0.1 });
    try {
      const ws = await openClient(proxy.addr.port, ["binary"]);
      let pings = 0;
      ws.on("ping", () => pings++);
      await waitFor(() => pings >= 3, 5000, "three pings");
      const got = receive(ws, 3);
      ws.send(new Uint8Array([1, 2, 3]));
      assert.deepEqual(await within(5000, got), new Uint8Array([1, 2, 3]));
      ws.close();
      await closed(ws);
    } finally {
      await proxy.close();
      await echo.close();
    }
  });

  test("a client that misses two pongs in a row is dropped", async () => {
    const echo = await startEchoServer();
    const proxy = await startProxy(`127.0.0.1:${echo.port}`, { heartbeat: 0.1 });
    try {
      const raw = await rawConnect(proxy.addr.port);
      const opcodes: number[] = [];
      for (let i = 0; i < 10; i++) {
        const frame = await within(3000, raw.next(), "frame");
        if (!frame) break;
        opcodes.push(frame.opcode);
      }
      assert.deepEqual(opcodes, [0x9, 0x9], "two empty pings, then the socket is closed");
      await waitFor(() => proxy.sessions === 0, 5000, "session end");
    } finally {
      await proxy.close();
      await echo.close();
    }
  });
});

describe("addresses", () => {
  test("IPv6 listen and IPv6 target", { skip: NO_IPV6 }, async () => {
    const echo = await startEchoServer("::1");
    const proxy = await startProxy(`[::1]:${echo.port}`, { listen: { hostname: "::1", port: 0 } });
    try {
      assert.equal(proxy.addr.hostname, "::1");
      const ws = await openClient(proxy.addr.port, ["binary"], "::1");
      const got = receive(ws, 4);
      ws.send(new Uint8Array([6, 6, 6, 6]));
      assert.deepEqual(await within(5000, got), new Uint8Array([6, 6, 6, 6]));
      ws.close();
      await closed(ws);
    } finally {
      await proxy.close();
      await echo.close();
    }
  });

  test("unix socket target", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-"));
    const sockPath = path.join(dir, "echo.sock");
    const server = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => server.listen(sockPath, r));
    const proxy = await startProxy({ kind: "unix", path: sockPath });
    try {
      const ws = await openClient(proxy.addr.port, ["binary"]);
      const got = receive(ws, 5);
      ws.send(new TextEncoder().encode("unix!"));
      assert.equal(new TextDecoder().decode(await within(5000, got)), "unix!");
      ws.close();
      await closed(ws);
    } finally {
      await proxy.close();
      await new Promise((r) => server.close(r));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("scale and logs", () => {
  test("500 concurrent clients each get their own echo, without warnings", async () => {
    const echo = await startEchoServer();
    const proxy = await startProxy(`127.0.0.1:${echo.port}`);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on("warning", onWarning);
    try {
      const one = async (i: number) => {
        const ws = await openClient(proxy.addr.port, ["binary"]);
        const msg = pattern(100, i);
        const got = receive(ws, msg.length);
        ws.send(msg);
        assert.deepEqual(await got, msg);
        return ws;
      };
      const clients = await within(
        30000,
        Promise.all(Array.from({ length: 500 }, (_, i) => one(i))),
      );
      assert.equal(proxy.sessions, 500);
      await Promise.all(clients.map((ws) => (ws.close(), closed(ws))));
      assert.deepEqual(warnings, []);
    } finally {
      process.off("warning", onWarning);
      await proxy.close();
      await echo.close();
    }
  });

  test("one open and one close line per session, with id, addresses and bytes", async () => {
    const echo = await startEchoServer();
    const lines: string[] = [];
    const tokens: string[] = [];
    const logger = createLogger({ write: (l) => lines.push(l), traffic: (t) => tokens.push(t) });
    const proxy = await startProxy(`127.0.0.1:${echo.port}`, { logger });
    try {
      const ws = await openClient(proxy.addr.port, ["binary"]);
      const got = receive(ws, 10);
      ws.send(pattern(10));
      await within(5000, got);
      ws.close(1000, "bye");
      await closed(ws);
      await waitFor(() => lines.length >= 2, 5000, "close line");
      const target = `127.0.0.1:${echo.port}`;
      const ts = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z INFO";
      assert.match(lines[0]!, new RegExp(`^${ts} #1 127\\.0\\.0\\.1:\\d+ -> ${target}: open`));
      assert.match(
        lines[1]!,
        new RegExp(
          `^${ts} #1 127\\.0\\.0\\.1:\\d+ -> ${target}: closed 1000 "bye" after \\d+\\.\\d{3} s, ` +
            "client->target 10 B, target->client 10 B$",
        ),
      );
      assert.equal(lines.length, 2);
      assert.deepEqual(tokens.sort(), ["{", "}"]);
    } finally {
      await proxy.close();
      await echo.close();
    }
  });
});
