/**
 * The PROXY protocol on both sides: `--proxy-protocol` takes the client from
 * the header a load balancer sends first (v1 and v2, before TLS too; a
 * connection without a valid one is closed), with hand-built headers and
 * behind a real HAProxy (`send-proxy-v2`); `--target-proxy-protocol` sends
 * the target a v2 header naming the client before the payload.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import type { ConnInfo } from "../lib/types.ts";
import type { WebsockifyOptions } from "../mod.ts";
import { type Certs, makeCerts } from "./_certs.ts";
import { encodeFrame } from "./_frames.ts";
import {
  freePort,
  pattern,
  spawnCli,
  startEchoServer,
  startProxy,
  startTcpServer,
  type TcpServer,
  waitFor,
  within,
  withRecordingProxy,
} from "./_harness.ts";
import { after, before, describe, needs, test } from "./_skip.ts";

let echo: TcpServer;
let certs: Certs;
before(async () => {
  echo = await startEchoServer();
  certs = makeCerts();
});
after(async () => {
  await echo.close();
  certs.remove();
});

const V2_SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** A PROXY v2 header by hand: `PROXY` over TCP with two IPv4 or two IPv6 addresses, or `LOCAL`. */
function v2Header(
  source?: { ip: number[]; port: number },
  destination?: { ip: number[]; port: number },
): Uint8Array {
  if (!source || !destination) return Uint8Array.of(...V2_SIGNATURE, 0x20, 0x00, 0, 0);
  const six = source.ip.length === 16;
  const body = [
    ...source.ip,
    ...destination.ip,
    source.port >> 8,
    source.port & 255,
    destination.port >> 8,
    destination.port & 255,
  ];
  return Uint8Array.of(...V2_SIGNATURE, 0x21, six ? 0x21 : 0x11, 0, body.length, ...body);
}

const text = (s: string) => new TextEncoder().encode(s);

/** What a connection that sent `prefix` got: the upgrade's status (0: closed unanswered). */
interface Outcome {
  readonly status: number;
  /** Whether one binary message came back from the echo target. */
  readonly echoed: boolean;
}

/**
 * Connects, sends the `prefix` pieces (50 ms apart), optionally starts TLS,
 * then a WebSocket upgrade; on a 101, sends one message (`message`, default
 * three bytes) and waits for its echo, or with `sent` for that to settle
 * instead (it gets the client's local port).
 */
async function connectAfter(
  port: number,
  prefix: Uint8Array[],
  options: {
    tls?: boolean;
    localAddress?: string;
    message?: Uint8Array;
    sent?: (localPort: number) => Promise<void>;
  } = {},
): Promise<Outcome> {
  const raw = net.connect({ host: "127.0.0.1", port, localAddress: options.localAddress });
  const connected = new Promise((resolve, reject) => {
    raw.once("connect", resolve);
    raw.once("error", reject);
  });
  raw.on("error", () => {});
  await within(5000, connected, "connect");
  try {
    for (const [i, piece] of prefix.entries()) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 50));
      raw.write(piece);
    }
    let sock: Duplex = raw;
    if (options.tls) {
      const secure = tls.connect({
        socket: raw,
        servername: "localhost",
        ca: fs.readFileSync(certs.ca),
      });
      secure.on("error", () => {});
      await within(5000, new Promise((resolve) => secure.once("secureConnect", resolve)), "TLS");
      sock = secure;
    }
    let got = Buffer.alloc(0);
    let ended = false;
    sock.on("data", (d: Buffer) => (got = Buffer.concat([got, d])));
    sock.on("close", () => (ended = true));
    sock.write(
      "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
        "Sec-WebSocket-Protocol: binary\r\n\r\n",
    );
    await waitFor(() => ended || got.includes("\r\n\r\n"), 5000, "answer or close");
    const end = got.indexOf("\r\n\r\n");
    if (end < 0) return { status: 0, echoed: false };
    const status = Number(got.subarray(0, end).toString("latin1").split(" ")[1]);
    if (status !== 101) return { status, echoed: false };
    got = got.subarray(end + 4);
    sock.write(encodeFrame(2, options.message ?? Uint8Array.of(1, 2, 3)));
    if (options.sent) {
      await options.sent(raw.localPort!);
      return { status, echoed: false };
    }
    await waitFor(() => ended || got.length >= 5, 5000, "echo");
    return { status, echoed: Buffer.from(got.subarray(0, 5)).equals(Buffer.of(0x82, 3, 1, 2, 3)) };
  } finally {
    raw.destroy();
  }
}

/** A proxy to the echo server with verbose text logs and an auth plugin that records. */
function withProxy(
  options: Partial<WebsockifyOptions>,
  run: (port: number, lines: string[], seen: ConnInfo[]) => Promise<void>,
): Promise<void> {
  const target = `127.0.0.1:${echo.port}`;
  return withRecordingProxy(
    target,
    options,
    { verbose: true },
    (port, recorded) => run(port, recorded.lines, recorded.seen),
  );
}

describe("--proxy-protocol", { timeout: 30000 }, () => {
  test("a PROXY v1 header names the client: auth plugin and log lines", async () => {
    await withProxy({ proxyProtocol: true }, async (port, lines, seen) => {
      const header = text("PROXY TCP4 192.0.2.7 127.0.0.1 50123 6080\r\n");
      assert.deepEqual(await connectAfter(port, [header]), { status: 101, echoed: true });
      assert.deepEqual(seen[0]!.remote, { hostname: "192.0.2.7", port: 50123 });
      assert.equal(seen[0]!.peer?.hostname, "127.0.0.1");
      await waitFor(() => lines.some((l) => / closed /.test(l)), 5000, "close line");
      assert.match(lines.join("\n"), /#1 192\.0\.2\.7:50123 \(peer 127\.0\.0\.1:\d+\) -> .*: open/);
    });
  });

  test("a PROXY v2 header (IPv6), arriving in pieces, names the client", async () => {
    await withProxy({ proxyProtocol: true }, async (port, _lines, seen) => {
      const header = v2Header(
        { ip: [0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 7], port: 40000 },
        { ip: [...new Array(15).fill(0), 1], port: 6080 },
      );
      const outcome = await connectAfter(port, [header.subarray(0, 10), header.subarray(10)]);
      assert.deepEqual(outcome, { status: 101, echoed: true });
      assert.deepEqual(seen[0]!.remote, { hostname: "2001:db8::7", port: 40000 });
    });
  });

  test("TLS is sniffed after the header", async () => {
    const options = { proxyProtocol: true, tls: { cert: certs.cert, key: certs.key } };
    await withProxy(options, async (port, _lines, seen) => {
      const v1 = text("PROXY TCP4 198.51.100.1 127.0.0.1 1111 6080\r\n");
      const v2 = v2Header({ ip: [198, 51, 100, 2], port: 2222 }, {
        ip: [127, 0, 0, 1],
        port: 6080,
      });
      for (const header of [v1, v2]) {
        assert.deepEqual(await connectAfter(port, [header], { tls: true }), {
          status: 101,
          echoed: true,
        });
      }
      assert.deepEqual(seen.map((i) => [i.remote.hostname, i.remote.port, i.tls]), [
        ["198.51.100.1", 1111, true],
        ["198.51.100.2", 2222, true],
      ]);
    });
  });

  test("a LOCAL header (a health check) keeps the peer address", async () => {
    await withProxy({ proxyProtocol: true }, async (port, _lines, seen) => {
      assert.deepEqual(await connectAfter(port, [v2Header()]), { status: 101, echoed: true });
      assert.equal(seen[0]!.remote.hostname, "127.0.0.1");
      assert.equal(seen[0]!.peer, undefined);
    });
  });

  test("a connection without a valid header is closed unanswered, with a log line", async () => {
    await withProxy({ proxyProtocol: true }, async (port, lines, seen) => {
      const bad: [string, Uint8Array[], RegExp][] = [
        ["bare", [], /no PROXY protocol header/],
        ["v1 without an end", [text(`PROXY TCP4 ${"1".repeat(150)}`)], /PROXY v1 header too long/],
        ["v1 bad address", [text("PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\n")], /bad PROXY v1/],
        ["v1 port", [text("PROXY TCP4 192.0.2.1 127.0.0.1 70000 2\r\n")], /bad PROXY v1/],
        ["v2 oversized", [Uint8Array.of(...V2_SIGNATURE, 0x21, 0x11, 0xff, 0xff)], /too long/],
        ["v2 bad version", [Uint8Array.of(...V2_SIGNATURE, 0x31, 0x11, 0, 0)], /bad PROXY v2/],
      ];
      for (const [name, prefix, reason] of bad) {
        const before = lines.length;
        assert.deepEqual(await connectAfter(port, prefix), { status: 0, echoed: false }, name);
        await waitFor(() => lines.length > before, 5000, `${name}: log line`);
        assert.match(lines.at(-1)!, /INFO #\d+ 127\.0\.0\.1:\d+: PROXY protocol: /, name);
        assert.match(lines.at(-1)!, reason, name);
      }
      assert.equal(seen.length, 0);
    });
  });
});

const HAPROXY = needs(
  "haproxy",
  spawnSync("haproxy", ["-v"]).status === 0,
  "apt-get install haproxy",
);

describe("behind HAProxy with send-proxy-v2", { skip: HAPROXY, timeout: 60000 }, () => {
  test("the client's own address (127.0.0.2) is the one logged", async () => {
    const front = await freePort();
    const proc = spawnCli(["--proxy-protocol", "127.0.0.1:0", `127.0.0.1:${echo.port}`]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-haproxy-"));
    let haproxy: ReturnType<typeof spawn> | undefined;
    try {
      const port = await proc.port();
      const config = path.join(dir, "haproxy.cfg");
      fs.writeFileSync(
        config,
        [
          "defaults",
          "  mode tcp",
          "  timeout connect 5s",
          "  timeout client 30s",
          "  timeout server 30s",
          "frontend in",
          `  bind 127.0.0.1:${front}`,
          "  default_backend ws",
          "backend ws",
          `  server s1 127.0.0.1:${port} send-proxy-v2`,
          "",
        ].join("\n"),
      );
      haproxy = spawn("haproxy", ["-db", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
      let haproxyLog = "";
      haproxy.stderr!.setEncoding("utf8").on("data", (d: string) => (haproxyLog += d));
      // Tried until HAProxy is up (its port accepts and forwards).
      let outcome: Outcome | undefined;
      for (let i = 0; i < 50 && !outcome?.echoed; i++) {
        outcome = await connectAfter(front, [], { localAddress: "127.0.0.2" }).catch(() =>
          undefined
        );
        if (!outcome?.echoed) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.deepEqual(outcome, { status: 101, echoed: true }, haproxyLog);
      await waitFor(() => / closed /.test(proc.stderr), 5000, "close line");
      assert.match(proc.stderr, /#\d+ 127\.0\.0\.2:\d+ \(peer 127\.0\.0\.1:\d+\) -> .*: open/);
    } finally {
      if (haproxy && haproxy.exitCode === null) {
        const exited = new Promise((resolve) => haproxy!.once("exit", resolve));
        haproxy.kill("SIGKILL");
        await within(5000, exited, "haproxy exit");
      }
      await proc.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A target that records every byte it receives. */
async function recordingTarget(): Promise<{ server: TcpServer; bytes: () => Buffer }> {
  const chunks: Buffer[] = [];
  const server = await startTcpServer((sock) => sock.on("data", (d: Buffer) => chunks.push(d)));
  return { server, bytes: () => Buffer.concat(chunks) };
}

/** Reads a PROXY v2 header over TCP/IPv4 by hand: its addresses and its length. */
function parseV2(bytes: Buffer) {
  assert.ok(bytes.subarray(0, 12).equals(Buffer.from(V2_SIGNATURE)), "v2 signature");
  assert.equal(bytes[12], 0x21, "version 2, PROXY");
  assert.equal(bytes[13], 0x11, "TCP over IPv4");
  const length = 16 + bytes.readUInt16BE(14);
  const ip = (at: number) => [...bytes.subarray(at, at + 4)].join(".");
  return {
    source: `${ip(16)}:${bytes.readUInt16BE(24)}`,
    destination: `${ip(20)}:${bytes.readUInt16BE(26)}`,
    length,
  };
}

describe("--target-proxy-protocol", { timeout: 30000 }, () => {
  test("the target gets a v2 header naming the client, then the payload byte-exact", async () => {
    const target = await recordingTarget();
    const proxy = await startProxy(`127.0.0.1:${target.server.port}`, {
      targetProxyProtocol: true,
    });
    try {
      const payload = pattern(200_000, 3);
      let local = 0;
      const sent = (port: number) => {
        local = port;
        return waitFor(() => target.bytes().length >= 28 + payload.length, 10000, "payload");
      };
      const outcome = await connectAfter(proxy.addr.port, [], { message: payload, sent });
      assert.equal(outcome.status, 101);
      const bytes = target.bytes();
      const header = parseV2(bytes);
      assert.equal(header.source, `127.0.0.1:${local}`);
      assert.equal(header.destination, `127.0.0.1:${proxy.addr.port}`);
      assert.ok(bytes.subarray(header.length).equals(Buffer.from(payload)), "payload");
    } finally {
      await proxy.close();
      await target.server.close();
    }
  });

  test("websockify --proxy-protocol --target-proxy-protocol passes the client on", async () => {
    const target = await recordingTarget();
    const proc = spawnCli([
      "--proxy-protocol",
      "--target-proxy-protocol",
      "127.0.0.1:0",
      `127.0.0.1:${target.server.port}`,
    ]);
    try {
      const port = await proc.port();
      const header = text("PROXY TCP4 192.0.2.7 192.0.2.1 50123 443\r\n");
      const sent = () => waitFor(() => target.bytes().length >= 28 + 3, 10000, "payload");
      const outcome = await connectAfter(port, [header], { sent });
      assert.equal(outcome.status, 101);
      const bytes = target.bytes();
      const got = parseV2(bytes);
      assert.equal(got.source, "192.0.2.7:50123");
      assert.equal(got.destination, "192.0.2.1:443");
      assert.deepEqual([...bytes.subarray(got.length)], [1, 2, 3]);
    } finally {
      await proc.kill();
      await target.server.close();
    }
  });
});
