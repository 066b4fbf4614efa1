/**
 * Client identity behind an HTTP proxy (`--trusted-proxy`): `Forwarded` and
 * `X-Forwarded-For` name the client only when the TCP peer is trusted, per
 * request, in the log lines and in what auth plugins receive.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import type { ConnInfo } from "../lib/types.ts";
import {
  closed,
  runCli,
  spawnCli,
  startEchoServer,
  type TcpServer,
  waitFor,
  within,
  withRecordingProxy,
} from "./_harness.ts";

let echo: TcpServer;
before(async () => (echo = await startEchoServer()));
after(() => echo.close());

/** A proxy to the echo server that logs JSON lines and records what its auth plugin sees. */
function withProxy(
  trustedProxy: string,
  run: (port: number, lines: string[], seen: ConnInfo[]) => Promise<void>,
): Promise<void> {
  const target = `127.0.0.1:${echo.port}`;
  return withRecordingProxy(
    target,
    { trustedProxy },
    { format: "json" },
    (port, recorded) => run(port, recorded.lines, recorded.seen),
  );
}

/** Opens a session with extra request headers, echoes one message and closes it. */
async function session(port: number, headers: Record<string, string | string[]>): Promise<void> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, ["binary"], { headers });
  await within(
    5000,
    new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    }),
    "open",
  );
  const echoed = new Promise((resolve) => ws.once("message", resolve));
  ws.send(Uint8Array.of(1, 2, 3));
  await within(5000, echoed, "echo");
  ws.close();
  await within(5000, closed(ws), "close");
}

/** The JSON log lines of one event. */
function events(lines: string[], event: string): Record<string, unknown>[] {
  return lines.map((l) => JSON.parse(l)).filter((l) => l.event === event);
}

describe("--trusted-proxy", { timeout: 30000 }, () => {
  test("X-Forwarded-For from a trusted peer names the client: logs and auth plugin", async () => {
    await withProxy("127.0.0.1, 10.0.0.0/8", async (port, lines, seen) => {
      await session(port, { "X-Forwarded-For": "203.0.113.9, 198.51.100.7, 10.1.2.3" });
      assert.equal(seen.length, 1);
      assert.deepEqual(seen[0]!.remote, { hostname: "198.51.100.7", port: 0 });
      assert.equal(seen[0]!.peer?.hostname, "127.0.0.1");
      await waitFor(() => events(lines, "close").length === 1, 5000, "close line");
      for (const event of ["open", "close"]) {
        const [line] = events(lines, event);
        assert.equal(line!.client, "198.51.100.7", JSON.stringify(line));
        assert.match(String(line!.peer), /^127\.0\.0\.1:\d+$/);
        assert.match(String(line!.msg), /^#\d+ 198\.51\.100\.7 \(peer 127\.0\.0\.1:\d+\) -> /);
      }
    });
  });

  test("Forwarded for= with a quoted IPv6 address and port, obfuscated hops skipped", async () => {
    await withProxy("127.0.0.1", async (port, lines, seen) => {
      await session(port, {
        Forwarded: 'for=192.0.2.43, for="[2001:db8:cafe::17]:4711";proto=https;by=_edge',
      });
      await session(port, { Forwarded: "for=192.0.2.60, for=_hidden" });
      assert.deepEqual(seen[0]!.remote, { hostname: "2001:db8:cafe::17", port: 4711 });
      // An obfuscated client is not an address: the trusted peer stays the client.
      assert.equal(seen[1]!.remote.hostname, "127.0.0.1");
      assert.equal(seen[1]!.peer, undefined);
      await waitFor(() => events(lines, "open").length === 2, 5000, "open lines");
      assert.equal(events(lines, "open")[0]!.client, "[2001:db8:cafe::17]:4711");
    });
  });

  test("the headers are ignored from a peer that is not trusted", async () => {
    await withProxy("10.0.0.0/8, ::1", async (port, lines, seen) => {
      await session(port, {
        "X-Forwarded-For": "198.51.100.7",
        Forwarded: "for=198.51.100.8",
      });
      assert.equal(seen[0]!.remote.hostname, "127.0.0.1");
      assert.equal(seen[0]!.peer, undefined);
      await waitFor(() => events(lines, "open").length === 1, 5000, "open line");
      const [open] = events(lines, "open");
      assert.match(String(open!.client), /^127\.0\.0\.1:\d+$/);
      assert.equal(open!.peer, undefined);
      assert.doesNotMatch(lines.join("\n"), /198\.51\.100/);
    });
  });

  test("each request on a keep-alive connection is read anew", async () => {
    await withProxy("127.0.0.1", async (port, lines) => {
      const sock = net.connect(port, "127.0.0.1");
      let text = "";
      sock.setEncoding("latin1").on("data", (d: string) => (text += d));
      const request = (client: string) =>
        `POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nX-Forwarded-For: ${client}\r\n\r\n`;
      sock.write(request("192.0.2.1"));
      await waitFor(() => text.includes(" 405 "), 5000, "first answer");
      sock.write(request("192.0.2.2"));
      await waitFor(() => text.split(" 405 ").length === 3, 5000, "second answer");
      sock.destroy();
      const refused = events(lines, "refuse");
      assert.deepEqual(refused.map((l) => l.client), ["192.0.2.1", "192.0.2.2"]);
      assert.equal(refused[0]!.id, refused[1]!.id, "one connection");
    });
  });

  test("long lists and many header lines are cut at a bounded number of hops", async () => {
    await withProxy("127.0.0.1, 10.0.0.0/8", async (port, _lines, seen) => {
      // A forged address far to the left, behind more trusted hops than are read.
      const hops = Array.from({ length: 200 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
      await session(port, { "X-Forwarded-For": ["198.51.100.66", ...hops].join(", ") });
      const lines = Array.from({ length: 40 }, (_, i) => `10.1.0.${i}`);
      await session(port, { "X-Forwarded-For": ["198.51.100.67", ...lines] });
      for (const info of seen) {
        assert.match(info.remote.hostname, /^10\./, JSON.stringify(info.remote));
        assert.equal(info.peer?.hostname, "127.0.0.1");
      }
    });
  });

  test("websockify --trusted-proxy logs the client and its peer", async () => {
    const proc = spawnCli(["--trusted-proxy=127.0.0.0/8", "127.0.0.1:0", `127.0.0.1:${echo.port}`]);
    try {
      const port = await proc.port();
      await session(port, { "X-Forwarded-For": "198.51.100.7" });
      await waitFor(() => /: closed \d+/.test(proc.stderr), 5000, "close line");
      assert.match(proc.stderr, /#1 198\.51\.100\.7 \(peer 127\.0\.0\.1:\d+\) -> .*: open/);
    } finally {
      await proc.kill();
    }
  });

  test("websockify --trusted-proxy with a bad CIDR prints usage and exits 2", async () => {
    const result = await runCli(["--trusted-proxy=10.0.0.0/8,10.0.0.300", "6080", "h:1"]);
    assert.equal(result.code, 2, result.stderr);
    const errors = result.stderr.split("\n").filter((l) => l.startsWith("websockify: error: "));
    assert.deepEqual(errors, [
      "websockify: error: option --trusted-proxy: '10.0.0.300' is not an IP address or CIDR block",
    ]);
    assert.doesNotMatch(result.stderr, /^\s+at /m);
  });
});
