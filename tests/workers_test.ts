/**
 * `--workers=N`: several processes serve one port (cluster on Node,
 * SO_REUSEPORT on Deno and Bun), and stop together.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import {
  closed,
  openClient,
  receive,
  spawnCli,
  startEchoServer,
  type TcpServer,
  waitFor,
  within,
} from "./_harness.ts";

let echo: TcpServer;
before(async () => (echo = await startEchoServer()));
after(() => echo.close());

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("--workers", () => {
  test("--workers=2 serves one port from two processes and stops them all", async () => {
    const proc = spawnCli(["--workers=2", "127.0.0.1:0", `127.0.0.1:${echo.port}`]);
    try {
      const port = await proc.port();
      // Each worker prints the banner once it listens; one may start later.
      const listening = () => (proc.stderr.match(/Listen on /g) ?? []).length;
      await waitFor(() => listening() === 2, 10000, "both workers listening");
      for (let i = 0; i < 24; i++) {
        const ws = await openClient(port, ["binary"]);
        const got = receive(ws, 1);
        ws.send(new Uint8Array([i]));
        assert.deepEqual(await within(5000, got), new Uint8Array([i]));
        ws.close();
        await closed(ws);
      }
      await waitFor(() => (proc.stderr.match(/: closed /g) ?? []).length === 24, 5000, "closes");
      // Each process numbers its own connections from 1.
      assert.equal((proc.stderr.match(/ #1 [^\n]*: open /g) ?? []).length, 2, proc.stderr);
      const pids = [...proc.stderr.matchAll(/Worker \d of 2 started \(pid (\d+)\)/g)].map((m) =>
        Number(m[1])
      );
      assert.ok(pids.length >= 1 && pids.every(alive), proc.stderr);
      assert.equal(await within(10000, proc.kill("SIGTERM"), "exit"), 0);
      await waitFor(() => !pids.some(alive), 5000, "workers gone");
    } finally {
      await proc.kill("SIGKILL");
    }
  });
});
