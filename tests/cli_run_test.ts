/**
 * `runCli()` in this process, with a host of the test's own: what the
 * command writes, the status it ends with, and that a signal given through
 * the host stops a real proxy on loopback.
 *
 * @module
 */
import assert from "node:assert/strict";
import net from "node:net";
import process from "node:process";
import { describe, test } from "node:test";
import { type CliHost, type CliSignal, runCli } from "../adapters/cli/run.ts";
import { HELP, USAGE } from "../lib/cli/args.ts";
import {
  closed,
  openClient,
  pattern,
  receive,
  startEchoServer,
  waitFor,
  within,
} from "./_harness.ts";

/** A host that records output, exits and signal handlers. */
interface FakeHost extends CliHost {
  readonly out: string[];
  readonly err: string[];
  readonly exits: number[];
  readonly handlers: Map<CliSignal, Set<() => void>>;
  /** Calls the handlers for `signal`, as the process would on a signal. */
  signal(signal: CliSignal): void;
}

function fakeHost(): FakeHost {
  const handlers = new Map<CliSignal, Set<() => void>>();
  const out: string[] = [];
  const err: string[] = [];
  const exits: number[] = [];
  return {
    out,
    err,
    exits,
    handlers,
    stdout: (text) => void out.push(text),
    stderr: (text) => void err.push(text),
    env: {},
    cwd: process.cwd(),
    pid: 4242,
    exit: (code) => void exits.push(code),
    on(signal, handler) {
      if (!handlers.has(signal)) handlers.set(signal, new Set());
      handlers.get(signal)!.add(handler);
    },
    off: (signal, handler) => void handlers.get(signal)?.delete(handler),
    signal(signal) {
      for (const handler of [...handlers.get(signal) ?? []]) handler();
    },
  };
}

/** Handlers still installed on `host`. */
const installed = (host: FakeHost) =>
  [...host.handlers.values()].reduce((n, set) => n + set.size, 0);

describe("runCli with a host of its own", () => {
  test("--help writes the help to stdout and resolves 0", async () => {
    const host = fakeHost();
    assert.equal(await within(10000, runCli(["--help"], host)), 0);
    assert.equal(host.out.join(""), `${HELP}\n`);
    assert.deepEqual(host.err, []);
    assert.deepEqual(host.exits, [], "--help ends by itself");
  });

  test("a bad argument writes the usage and one error line, status 2", async () => {
    const host = fakeHost();
    assert.equal(await within(10000, runCli(["--bogus", "6080", "h:1"], host)), 2);
    assert.equal(host.err.join(""), `${USAGE}\n\nwebsockify: error: no such option: --bogus\n`);
    assert.deepEqual(host.out, []);
    assert.deepEqual(host.exits, [2]);
  });

  test("a port in use is one error line and status 1", async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const { port } = taken.address() as net.AddressInfo;
    const echo = await startEchoServer();
    try {
      const host = fakeHost();
      const status = await within(
        10000,
        runCli([`127.0.0.1:${port}`, `127.0.0.1:${echo.port}`], host),
      );
      assert.equal(status, 1);
      const text = host.err.join("");
      assert.equal(text.split("\n").length, 2, text);
      assert.match(
        text,
        new RegExp(`^websockify: error: Cannot listen on 127.0.0.1:${port}: .*\n$`),
      );
      assert.deepEqual(host.exits, [1]);
      assert.equal(installed(host), 0, "signal handlers removed");
    } finally {
      await new Promise((resolve) => taken.close(resolve));
      await echo.close();
    }
  });

  test("serves on port 0, echoes, and a SIGTERM through the host ends it with 0", async () => {
    const echo = await startEchoServer();
    const host = fakeHost();
    const run = runCli(["127.0.0.1:0", `127.0.0.1:${echo.port}`], host);
    try {
      const listen = () => /Listen on 127\.0\.0\.1:(\d+)/.exec(host.err.join(""));
      await waitFor(() => listen() !== null, 10000, "the banner");
      const port = Number(listen()![1]);
      assert.notEqual(port, 0);
      assert.ok(host.handlers.get("SIGTERM")?.size, "a SIGTERM handler");
      const ws = await openClient(port, ["binary"]);
      const data = pattern(1000);
      const got = receive(ws, data.byteLength);
      ws.send(data);
      assert.deepEqual(await within(10000, got), data);
      const end = closed(ws);
      host.signal("SIGTERM");
      assert.equal(await within(10000, run), 0);
      assert.equal((await within(10000, end)).code, 1001);
      assert.match(host.err.join(""), /Got SIGTERM, closing 1 session\(s\)/);
      assert.deepEqual(host.exits, [0]);
      assert.equal(installed(host), 0, "signal handlers removed");
    } finally {
      host.signal("SIGTERM");
      await run.catch(() => {});
      await echo.close();
    }
  });
});
