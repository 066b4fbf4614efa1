/**
 * Running under a service manager: systemd socket activation (the socket
 * passed as fd 3, under `systemd-socket-activate`).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import type WebSocket from "ws";
import {
  cliCommand,
  type CliProcess,
  closed,
  freePort,
  openClient,
  receive,
  spawnCommand,
  startEchoServer,
  type TcpServer,
  within,
} from "./_harness.ts";
import { after, before, describe, needs, test } from "./_skip.ts";

/** The absolute path of `program` on PATH, or undefined. */
function which(program: string): string | undefined {
  try {
    return execFileSync("sh", ["-c", `command -v ${program}`], { encoding: "utf8" }).trim() ||
      undefined;
  } catch {
    return undefined;
  }
}

const ACTIVATE = which("systemd-socket-activate");

let echo: TcpServer;
const procs: CliProcess[] = [];
before(async () => {
  echo = await startEchoServer();
});
after(async () => {
  await Promise.all(procs.map((p) => p.kill("SIGKILL")));
  await echo.close();
});

/** Sends `text` and expects it back through the echo target. */
async function echoOnce(ws: WebSocket, text: string): Promise<void> {
  const data = new TextEncoder().encode(text);
  const back = receive(ws, data.byteLength);
  ws.send(data);
  assert.deepEqual(await within(10000, back, "echo"), data);
}

/** A ws client on `port`, retried while the proxy starts (bounded). */
async function connect(port: number, proc: CliProcess): Promise<WebSocket> {
  const end = Date.now() + 30000;
  for (;;) {
    try {
      return await within(20000, openClient(port, ["binary"]), "ws open");
    } catch (error) {
      if (Date.now() > end || proc.child.exitCode !== null) {
        throw new Error(`${error}; output: ${proc.stdout}${proc.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

describe("systemd socket activation", {
  skip: needs("systemd-socket-activate", ACTIVATE !== undefined, "apt-get install systemd"),
  timeout: 60000,
}, () => {
  test("listens on the socket passed as fd 3 and exits 0 on SIGTERM", async () => {
    const port = await freePort();
    // systemd-socket-activate binds, then execs the command (same pid) on the first connection.
    const proc = spawnCommand([
      ACTIVATE!,
      ...["-l", `127.0.0.1:${port}`, "--"],
      ...cliCommand(),
      `127.0.0.1:${echo.port}`,
    ]);
    procs.push(proc);
    const ws = await connect(port, proc);
    await echoOnce(ws, "activated");
    assert.match(proc.stderr, /Listen on the activated socket \(fd 3\)/);
    ws.close();
    await closed(ws);
    assert.equal(await within(15000, proc.kill("SIGTERM"), "exit"), 0, proc.stderr);
  });
});
