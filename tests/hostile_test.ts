/**
 * Hostile clients over real sockets: connections that never finish their
 * handshake or request, Host headers that try to change the request's
 * query, and an upgrade to another protocol that asks for a large file.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { after, before, describe, test } from "node:test";
import type { Websockify } from "../mod.ts";
import { type Certs, makeCerts } from "./_certs.ts";
import {
  openClient,
  rawHttp,
  receive,
  sleep,
  spawnCli,
  startEchoServer,
  startProxy,
  type TcpServer,
  waitFor,
  within,
} from "./_harness.ts";

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

/** A WebSocket upgrade head for `path` with `host`. */
function upgradeHead(path: string, host: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

/** A socket and a promise of how long after `start` it closed. */
function track(sock: net.Socket): { closed: Promise<number>; isOpen: () => boolean } {
  const start = Date.now();
  let open = true;
  sock.on("error", () => {});
  sock.resume();
  const closed = new Promise<number>((resolve) =>
    sock.once("close", () => {
      open = false;
      resolve(Date.now() - start);
    })
  );
  return { closed, isOpen: () => open };
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: "127.0.0.1", port }, () => resolve(sock));
    sock.once("error", reject);
  });
}

/** Sends `parts` with `gap` ms between them; returns everything read until close. */
function exchange(port: number, parts: string[], gap = 150): Promise<string> {
  return within(
    10000,
    new Promise((resolve, reject) => {
      const sock = net.connect({ host: "127.0.0.1", port }, async () => {
        for (const [i, part] of parts.entries()) {
          if (i > 0) await sleep(gap);
          if (!sock.destroyed) sock.write(part);
        }
      });
      let text = "";
      sock.setEncoding("latin1");
      sock.on("data", (d: string) => {
        text += d;
        // A 101 keeps the connection: what it said is enough.
        if (text.startsWith("HTTP/1.1 101") && text.includes("\r\n\r\n")) sock.destroy();
      });
      sock.on("error", reject);
      sock.on("close", () => resolve(text));
    }),
    "exchange",
  );
}

describe("the handshake deadline", () => {
  let certs: Certs;
  let echo: TcpServer;
  let proxy: Websockify;
  let web: string;
  const FILE = 4 * 1024 * 1024;
  // The deadline is 1 s; a connection must be gone well before it would be without one.
  const BOUND = 4000;

  before(async () => {
    certs = makeCerts();
    web = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-web-"));
    fs.writeFileSync(path.join(web, "file.bin"), Buffer.alloc(FILE, 0x62));
    echo = await startEchoServer();
    proxy = await startProxy(`127.0.0.1:${echo.port}`, {
      handshakeTimeout: 1,
      tls: { cert: certs.combined },
      web,
    });
  });
  after(async () => {
    await proxy.close();
    await echo.close();
    certs.remove();
    fs.rmSync(web, { recursive: true, force: true });
  });

  const cases: [string, (sock: net.Socket) => Promise<void> | void][] = [
    ["a client that sends G only", (sock) => void sock.write("G")],
    [
      "a client that stops halfway through its head",
      (sock) => void sock.write("GET / HTTP/1.1\r\nHost: localhost\r\nUpgr"),
    ],
    ["a client that sends 3 bytes of a TLS record", (sock) => void sock.write(Buffer.of(22, 3, 1))],
    ["a client that dribbles a byte every 200 ms", async (sock) => {
      const head = upgradeHead("/", "localhost") + "X".repeat(100);
      for (let i = 0; i < head.length && !sock.destroyed; i++) {
        sock.write(head[i]!);
        await sleep(200);
      }
    }],
  ];
  for (const [name, behave] of cases) {
    test(`${name} is closed within the deadline`, async () => {
      const sock = await connect(proxy.addr.port);
      const { closed } = track(sock);
      const behaving = behave(sock);
      const ms = await within(BOUND, closed, "close by the proxy").finally(() => sock.destroy());
      assert.ok(ms >= 900, `closed after ${ms} ms, before the deadline`);
      await behaving;
    });
  }

  test("a TLS client that sends no request after its handshake is closed", async () => {
    const sock = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({
        port: proxy.addr.port,
        host: "127.0.0.1",
        servername: "localhost",
        ca: fs.readFileSync(certs.ca),
      }, () => resolve(s));
      s.once("error", reject);
    });
    const { closed } = track(sock as unknown as net.Socket);
    await within(BOUND, closed, "close by the proxy").finally(() => sock.destroy());
  });

  test("an idle keep-alive connection after an answer is closed", async () => {
    const sock = await connect(proxy.addr.port);
    let text = "";
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => (text += d));
    const { closed } = track(sock);
    sock.write("DELETE / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    await waitFor(() => text.includes("\r\n\r\n"), 5000, "the answer");
    const answered = Date.now();
    await within(BOUND, closed, "close by the proxy").finally(() => sock.destroy());
    assert.match(text, /^HTTP\/1\.1 405 /);
    assert.ok(Date.now() - answered < BOUND);
  });

  test("keep-alive requests that each come in time keep their connection", async () => {
    const sock = await connect(proxy.addr.port);
    let text = "";
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => (text += d));
    const { isOpen } = track(sock);
    try {
      for (let i = 1; i <= 3; i++) {
        sock.write("DELETE / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        await waitFor(() => text.split("HTTP/1.1 405").length > i, 5000, `answer ${i}`);
        await sleep(600);
      }
      assert.ok(isOpen(), "closed while requests came in time");
    } finally {
      sock.destroy();
    }
  });

  // A reader that stalls past the deadline: the answer has started, so it is not cut.
  for (
    const [how, extra] of [["plain", ""], [
      "h2c upgrade",
      "Upgrade: h2c\r\nConnection: Upgrade\r\n",
    ]]
  ) {
    test(`a ${how} download slower than the deadline completes`, async () => {
      const sock = await connect(proxy.addr.port);
      const { closed } = track(sock);
      sock.pause();
      let bytes = 0;
      sock.on("data", (chunk: Buffer) => (bytes += chunk.length));
      sock.write(`GET /file.bin HTTP/1.1\r\nHost: localhost\r\n${extra}Connection: close\r\n\r\n`);
      await sleep(1500);
      sock.resume();
      await within(10000, closed, "the download").finally(() => sock.destroy());
      assert.ok(bytes > FILE, `${bytes} bytes`);
    });
  }

  test("a session that opened in time outlives the deadline", async () => {
    const raw = await exchange(proxy.addr.port, [
      "GET / HTTP/1.1\r\nHost: localhost\r\n",
      upgradeHead("/", "localhost").split("\r\n").slice(2).join("\r\n"),
    ]);
    assert.match(raw, /^HTTP\/1\.1 101 /);
    const ws = await openClient(proxy.addr.port, ["binary"]);
    try {
      await sleep(1500);
      ws.send(Buffer.from("still here"));
      assert.equal(Buffer.from(await within(5000, receive(ws, 10))).toString(), "still here");
    } finally {
      ws.terminate();
    }
  });

  test("--handshake-timeout=1 on the command line sets the deadline", async () => {
    const proc = spawnCli(["--handshake-timeout=1", "127.0.0.1:0", `127.0.0.1:${echo.port}`]);
    try {
      const sock = await connect(await proc.port());
      const { closed } = track(sock);
      sock.write("GET / HTTP/1.1\r\n");
      await within(BOUND, closed, "close by the proxy").finally(() => sock.destroy());
    } finally {
      await proc.kill("SIGKILL");
    }
  });

  test("handshakeTimeout 0 leaves a slow client alone", async () => {
    const patient = await startProxy(`127.0.0.1:${echo.port}`, { handshakeTimeout: 0 });
    try {
      const raw = await exchange(patient.addr.port, [
        "G",
        "ET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
      ], 2000);
      assert.match(raw, /^HTTP\/1\.1 405 /);
    } finally {
      await patient.close();
    }
  });
});

describe("the Host header", () => {
  let echo: TcpServer;
  let proxy: Websockify;
  const looked: string[] = [];

  before(async () => {
    echo = await startEchoServer();
    proxy = await startProxy(undefined, {
      tokenPlugin: {
        lookup: (token: string) => {
          looked.push(token);
          return { kind: "tcp", hostname: "127.0.0.1", port: echo.port };
        },
      },
    });
  });
  after(async () => {
    await proxy.close();
    await echo.close();
  });

  /** An upgrade with token `a` and `host`, whole or in two writes; what came back. */
  function sendHead(host: string, split: boolean): Promise<string> {
    const head = upgradeHead("/?token=a", host);
    const cut = head.indexOf("\r\n") + 2;
    return exchange(proxy.addr.port, split ? [head.slice(0, cut), head.slice(cut)] : [head]);
  }

  const bad = ["h?token=b#", "h#x", "h/x", "a b", "[::1", "::1]", "[::1]x", "h:80?x", "h@i"];
  for (const [how, split] of [["whole (fast path)", false], ["split (node:http)", true]] as const) {
    for (const host of bad) {
      test(`Host ${JSON.stringify(host)} sent ${how} gets 400`, async () => {
        looked.length = 0;
        assert.match(await sendHead(host, split), /^HTTP\/1\.1 400 /);
        assert.deepEqual(looked, []);
      });
    }
    test(`Host [::1]:6080 sent ${how} is accepted`, async () => {
      looked.length = 0;
      assert.match(await sendHead("[::1]:6080", split), /^HTTP\/1\.1 101 /);
      assert.deepEqual(looked, ["a"]);
    });
  }

  // Hosts of the Host syntax that the URL parser refuses: the whole-head
  // path, which builds no Request, must refuse them as a Request would,
  // also right after a good Host (it remembers the last good one).
  const unparsable = ["h:99999", "[1:2]", "999.1.1.1", "a%00b"];
  for (const [how, split] of [["whole (fast path)", false], ["split (node:http)", true]] as const) {
    test(`Hosts the URL parser refuses, sent ${how}, get 400 without a lookup`, async () => {
      for (const host of unparsable) {
        looked.length = 0;
        const good = await exchange(proxy.addr.port, [upgradeHead("/?token=a", "h:6080")]);
        assert.match(good, /^HTTP\/1\.1 101 /);
        assert.deepEqual(looked, ["a"]);
        looked.length = 0;
        assert.match(await sendHead(host, split), /^HTTP\/1\.1 400 /, host);
        assert.deepEqual(looked, [], host);
      }
    });
  }

  test("a header sent twice is read joined, as a Request reads it", async () => {
    const head = upgradeHead("/?token=a", "h").replace(
      "Sec-WebSocket-Version",
      "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: binary\r\nSec-WebSocket-Version",
    );
    for (const parts of [[head], [head.slice(0, 5), head.slice(5)]]) {
      const raw = await exchange(proxy.addr.port, parts);
      assert.match(raw, /^HTTP\/1\.1 101 /);
      assert.match(raw, /\r\nSec-WebSocket-Protocol: binary\r\n/);
    }
  });

  test("a plain request with a bad Host gets 400", async () => {
    const res = await within(
      5000,
      rawHttp(proxy.addr.port, "GET / HTTP/1.1\r\nHost: h?x#\r\nConnection: close\r\n\r\n"),
    );
    assert.equal(res.status, 400);
  });
});

/** The resident set of process `pid` in bytes (Linux). */
function rss(pid: number): number {
  const kb = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb) * 1024;
}

describe("an upgrade to another protocol", () => {
  const SIZE = 128 * 1024 * 1024;
  let dir: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-big-"));
    const fd = fs.openSync(path.join(dir, "big.bin"), "w");
    const block = Buffer.alloc(1024 * 1024, 0x61);
    for (let i = 0; i < SIZE / block.length; i++) fs.writeSync(fd, block);
    fs.closeSync(fd);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("h2c GET of a 128 MiB --web file is streamed, not read whole", async () => {
    const proc = spawnCli(["--web", dir, "127.0.0.1:0", "127.0.0.1:9"]);
    try {
      const port = await proc.port();
      // Warm up the request path once so its code is loaded before the baseline.
      await within(10000, rawHttp(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
      const baseline = rss(proc.child.pid!);
      const sock = await connect(port);
      sock.on("error", () => {});
      let head = "";
      let body = 0;
      let peak = 0;
      let stalled = 0;
      const done = new Promise<void>((resolve) => sock.once("close", () => resolve()));
      sock.on("data", (chunk: Buffer) => {
        if (!head.includes("\r\n\r\n")) {
          head += chunk.toString("latin1");
          const end = head.indexOf("\r\n\r\n");
          if (end < 0) return;
          body += head.length - end - 4;
          head = head.slice(0, end + 4);
          // Stall the reader: the proxy must wait, holding little.
          sock.pause();
          setTimeout(() => {
            stalled = rss(proc.child.pid!);
            sock.resume();
          }, 500);
        } else body += chunk.length;
      });
      const sampler = setInterval(() => {
        try {
          peak = Math.max(peak, rss(proc.child.pid!));
        } catch { /* exited */ }
      }, 50);
      sock.write(
        "GET /big.bin HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n" +
          "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
      );
      await within(60000, done, "the download").finally(() => {
        clearInterval(sampler);
        sock.destroy();
      });
      assert.match(head, /^HTTP\/1\.1 200 /);
      assert.match(head, new RegExp(`\r\ncontent-length: ${SIZE}\r\n`, "i"));
      assert.equal(body, SIZE);
      // Garbage chunks may wait for a collection; a body read whole is all there at once.
      const mib = (n: number) => `${Math.round((n - baseline) / 1048576)} MiB`;
      assert.ok(stalled - baseline < SIZE / 4, `proxy grew by ${mib(stalled)} before the body`);
      assert.ok(peak - baseline < SIZE * 3 / 4, `proxy grew by up to ${mib(peak)}`);
    } finally {
      await proc.kill("SIGKILL");
    }
  });
});
