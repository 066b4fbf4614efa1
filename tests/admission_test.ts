/**
 * Admission and session limits over real sockets: the connection caps
 * (global, per client address, per token), the rate limit, `--allow-client`,
 * slots freed by every kind of session end, the session duration and idle
 * limits with their close codes, and the CLI's checks of the options.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { RateLimiter } from "../lib/http/rate_limit.ts";
import { createLogger } from "../lib/log.ts";
import { loadTokenPlugin, type Websockify, type WebsockifyOptions } from "../mod.ts";
import {
  closed,
  freePort,
  httpGet,
  openClient,
  pattern,
  receive,
  runCli,
  sleep,
  spawnCli,
  startEchoServer,
  startProxy,
  type TcpServer,
  waitFor,
  within,
} from "./_harness.ts";

let echo: TcpServer;
let tmp: string;
before(async () => {
  echo = await startEchoServer();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-admission-"));
});
after(async () => {
  await echo.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A proxy to the echo server with `options`, its log lines, closed after `body`. */
async function withProxy(
  options: Partial<WebsockifyOptions>,
  body: (proxy: Websockify, lines: string[]) => Promise<void>,
  target: WebsockifyOptions["target"] = `127.0.0.1:${echo.port}`,
): Promise<void> {
  const lines: string[] = [];
  const logger = createLogger({ write: (line) => lines.push(line), format: "json" });
  const proxy = await startProxy(options.tokenPlugin ? undefined : target, { logger, ...options });
  try {
    await body(proxy, lines);
  } finally {
    await proxy.close();
  }
}

/** Opens a session that echoes, or fails with the refusal's status. */
async function open(port: number, urlPath = "/", host = "127.0.0.1"): Promise<WebSocket> {
  const ws = await within(5000, openClient(port, ["binary"], host, urlPath), "open");
  const data = pattern(100);
  const got = receive(ws, data.length);
  ws.send(data);
  assert.deepEqual(await within(5000, got, "echo"), data);
  return ws;
}

/** The refusal of an upgrade: status and headers; fails if it is accepted. */
function refusal(
  port: number,
  urlPath = "/",
  host = "127.0.0.1",
): Promise<{ status: number; headers: Record<string, unknown> }> {
  const url = `ws://${host.includes(":") ? `[${host}]` : host}:${port}${urlPath}`;
  const ws = new WebSocket(url, ["binary"]);
  return within(
    5000,
    new Promise((resolve, reject) => {
      ws.once("unexpected-response", (_req, res) => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers });
        res.resume();
        ws.terminate();
      });
      ws.once("open", () => {
        ws.terminate();
        reject(new Error("accepted"));
      });
      ws.once("error", (error) => reject(error));
    }),
    "refusal",
  );
}

/** Closes clients and waits until the proxy has no session left. */
async function closeAll(proxy: Websockify, clients: WebSocket[]): Promise<void> {
  for (const ws of clients) ws.close();
  await waitFor(() => proxy.sessions === 0, 5000, "sessions ended");
}

/** The JSON refusal lines with this status. */
function refusals(lines: string[], status: number): Record<string, unknown>[] {
  return lines.map((line) => JSON.parse(line)).filter((l) =>
    l.event === "refuse" && l.status === status
  );
}

/** A token file with `names`, each to the echo server. */
let files = 0;
function tokenFile(...names: string[]): string {
  const file = path.join(tmp, `tokens${++files}.cfg`);
  fs.writeFileSync(file, names.map((n) => `${n}: 127.0.0.1:${echo.port}\n`).join(""));
  return file;
}

describe("the rate table", () => {
  test("the rate table frees slots as they age and stays bounded", () => {
    const limiter = new RateLimiter(2, 1000, 100);
    assert.equal(limiter.take("a", 0), 0);
    assert.equal(limiter.take("a", 100), 0);
    assert.equal(limiter.take("a", 500), 500);
    assert.equal(limiter.take("a", 1000), 0); // the first aged out
    limiter.untake("a", 1000);
    assert.equal(limiter.take("a", 1001), 0);
    for (let i = 0; i < 1000; i++) limiter.take(`k${i}`, 2000);
    assert.ok(limiter.size <= 100, `${limiter.size} keys`);
    assert.equal(limiter.take("k999", 2001), 0); // the most recent stay
    assert.equal(limiter.take("k999", 2002), 998);
  });
});

describe("connection caps", () => {
  test("--max-connections: 503 with Retry-After when full, a slot again when one ends", async () => {
    await withProxy({ maxConnections: 2 }, async (proxy, lines) => {
      const a = await open(proxy.addr.port);
      const b = await open(proxy.addr.port);
      const full = await refusal(proxy.addr.port);
      assert.equal(full.status, 503);
      assert.match(String(full.headers["retry-after"]), /^[1-9]\d*$/);
      assert.equal(refusals(lines, 503).length, 1, lines.join("\n"));
      a.close();
      await waitFor(() => proxy.sessions === 1, 5000, "one session left");
      const c = await open(proxy.addr.port);
      assert.equal((await refusal(proxy.addr.port)).status, 503);
      await closeAll(proxy, [b, c]);
      // Nothing leaked and nothing went negative: exactly two fit again.
      const d = await open(proxy.addr.port);
      const e = await open(proxy.addr.port);
      assert.equal((await refusal(proxy.addr.port)).status, 503);
      await closeAll(proxy, [d, e]);
    });
  });

  test("--max-connections-per-ip: 429 above N from one address, others still get in", async () => {
    await withProxy(
      { maxConnectionsPerIp: 1, listen: { hostname: "::", port: 0 } },
      async (proxy, lines) => {
        const port = proxy.addr.port;
        const a = await open(port, "/", "127.0.0.1");
        const full = await refusal(port, "/", "127.0.0.1");
        assert.equal(full.status, 429);
        assert.equal(refusals(lines, 429).length, 1, lines.join("\n"));
        const other = await open(port, "/", "::1");
        a.close();
        await waitFor(() => proxy.sessions === 1, 5000, "one session left");
        const again = await open(port, "/", "127.0.0.1");
        await closeAll(proxy, [other, again]);
      },
    );
  });

  test("--max-connections-per-token: 429 above N for one token (token file)", async () => {
    const tokenPlugin = await loadTokenPlugin("TokenFile", tokenFile("vm1", "vm2"));
    await withProxy({ maxConnectionsPerToken: 1, tokenPlugin }, async (proxy, lines) => {
      const port = proxy.addr.port;
      const a = await open(port, "/?token=vm1");
      const full = await refusal(port, "/?token=vm1");
      assert.equal(full.status, 429);
      const [line] = refusals(lines, 429);
      assert.ok(line, lines.join("\n"));
      const b = await open(port, "/?token=vm2");
      // A token that is not found takes no token slot.
      assert.equal((await refusal(port, "/?token=vm3")).status, 404);
      a.close();
      await waitFor(() => proxy.sessions === 1, 5000, "one session left");
      const again = await open(port, "/?token=vm1");
      await closeAll(proxy, [b, again]);
    });
  });

  test("a connection that goes before its 101 frees its slot", async () => {
    let entered!: () => void;
    const inAuth = new Promise<void>((resolve) => (entered = resolve));
    let open101!: () => void;
    const gate = new Promise<void>((resolve) => (open101 = resolve));
    let authDone = false;
    // Auth holds the upgrade (its slot already taken) until the client has gone.
    const authenticate = async () => {
      entered();
      await gate;
      authDone = true;
      return undefined;
    };
    await withProxy({ maxConnections: 1, authenticate }, async (proxy) => {
      const sock = net.connect({ host: "127.0.0.1", port: proxy.addr.port });
      sock.on("error", () => {});
      const gone = new Promise((resolve) => sock.once("close", resolve));
      sock.write(
        "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
      );
      await within(5000, inAuth, "auth reached");
      sock.destroy();
      await within(5000, gone, "client closed");
      await sleep(200); // for the server to see it
      open101();
      await waitFor(() => authDone, 5000, "auth done");
      await sleep(100);
      await waitFor(() => proxy.sessions === 0, 5000, "no session");
      const ws = await open(proxy.addr.port);
      await closeAll(proxy, [ws]);
    });
  });

  test("a session whose target cannot be reached frees its slots", async () => {
    const dead = await freePort();
    const file = path.join(tmp, "dead.cfg");
    fs.writeFileSync(file, `vm1: 127.0.0.1:${dead}\n`);
    const tokenPlugin = await loadTokenPlugin("TokenFile", file);
    const limits = { maxConnections: 1, maxConnectionsPerIp: 1, maxConnectionsPerToken: 1 };
    await withProxy({ ...limits, tokenPlugin }, async (proxy) => {
      for (let i = 0; i < 3; i++) {
        const ws = await within(
          5000,
          openClient(proxy.addr.port, ["binary"], "127.0.0.1", "/?token=vm1"),
        );
        assert.equal((await within(5000, closed(ws), "close")).code, 1011);
        await waitFor(() => proxy.sessions === 0, 5000, "session ended");
      }
      // Still exactly one slot: a second upgrade while one holds it is refused.
      fs.writeFileSync(file, `vm1: 127.0.0.1:${echo.port}\n`);
      await sleep(50);
      const ws = await open(proxy.addr.port, "/?token=vm1");
      assert.equal((await refusal(proxy.addr.port, "/?token=vm1")).status, 503);
      await closeAll(proxy, [ws]);
    });
  });

  test("a dual-stack listener's IPv4 clients match IPv4 blocks, not ::/0", async () => {
    const listen = { hostname: "::", port: 0 };
    await withProxy({ allowClient: ["127.0.0.0/8"], listen }, async (proxy) => {
      const ws = await open(proxy.addr.port, "/", "127.0.0.1");
      assert.equal((await refusal(proxy.addr.port, "/", "::1")).status, 403);
      await closeAll(proxy, [ws]);
    });
    await withProxy({ allowClient: ["::/0"], listen }, async (proxy) => {
      assert.equal((await refusal(proxy.addr.port, "/", "127.0.0.1")).status, 403);
      const ws = await open(proxy.addr.port, "/", "::1");
      await closeAll(proxy, [ws]);
    });
  });
});

describe("rate limit", () => {
  test("--rate-limit: 429 with Retry-After past N new sessions a minute", async () => {
    const tokenPlugin = await loadTokenPlugin("TokenFile", tokenFile("vm1"));
    await withProxy({ rateLimit: 2, tokenPlugin }, async (proxy, lines) => {
      const port = proxy.addr.port;
      // Refused upgrades are not sessions: they take no slot.
      assert.equal((await refusal(port, "/?token=nope")).status, 404);
      const a = await open(port, "/?token=vm1");
      await closeAll(proxy, [a]);
      const b = await open(port, "/?token=vm1");
      await closeAll(proxy, [b]);
      const limited = await refusal(port, "/?token=vm1");
      assert.equal(limited.status, 429);
      const wait = Number(limited.headers["retry-after"]);
      assert.ok(wait >= 1 && wait <= 60, `Retry-After ${wait}`);
      assert.equal(refusals(lines, 429).length, 1, lines.join("\n"));
    });
  });
});

describe("--allow-client", () => {
  test("other addresses get 403 before auth and token lookup, plain requests too", async () => {
    let lookups = 0;
    let auths = 0;
    const tokenPlugin = {
      lookup: () => (lookups++, { kind: "tcp" as const, hostname: "127.0.0.1", port: echo.port }),
    };
    const authenticate = () => (auths++, undefined);
    await withProxy(
      { allowClient: ["10.0.0.0/8", "2001:db8::/32"], tokenPlugin, authenticate },
      async (proxy, lines) => {
        const denied = await refusal(proxy.addr.port, "/?token=vm1");
        assert.equal(denied.status, 403);
        assert.equal((await httpGet(proxy.addr.port, "/")).status, 403);
        assert.equal(lookups + auths, 0);
        assert.equal(refusals(lines, 403).length, 2, lines.join("\n"));
      },
    );
    await withProxy({ allowClient: ["127.0.0.0/8"], tokenPlugin, authenticate }, async (proxy) => {
      const ws = await open(proxy.addr.port, "/?token=vm1");
      assert.equal(lookups, 1);
      await closeAll(proxy, [ws]);
    });
  });
});

describe("session limits", () => {
  test("--max-session-duration closes with 1008 and a reason", async () => {
    await withProxy({ maxSessionDuration: 1 }, async (proxy, lines) => {
      const ws = await open(proxy.addr.port);
      // Traffic does not extend it.
      const timer = setInterval(() => ws.send(pattern(10)), 200);
      try {
        const close = await within(8000, closed(ws), "close");
        assert.equal(close.code, 1008);
        assert.match(close.reason, /maximum duration/);
      } finally {
        clearInterval(timer);
      }
      await waitFor(() => proxy.sessions === 0, 5000, "session ended");
      const line = lines.map((l) => JSON.parse(l)).find((l) => l.event === "close");
      assert.equal(line?.closed_by, "server", lines.join("\n"));
    });
  });

  test("--session-idle-timeout closes an idle session with 1000, even with heartbeats", async () => {
    await withProxy({ sessionIdleTimeout: 2, heartbeat: 1 }, async (proxy) => {
      const idle = await open(proxy.addr.port);
      const idleClosed = closed(idle);
      // Pings both ways are no payload.
      const pinger = await open(proxy.addr.port);
      const pingerClosed = closed(pinger);
      let pongs = 0;
      pinger.on("pong", () => pongs++);
      let pings = 0;
      pinger.on("ping", () => pings++);
      const busy = await open(proxy.addr.port);
      const timers = [
        setInterval(() => pinger.ping(), 200),
        setInterval(() => busy.send(pattern(10)), 200),
      ];
      try {
        for (const done of [idleClosed, pingerClosed]) {
          const close = await within(8000, done, "idle close");
          assert.equal(close.code, 1000);
          assert.equal(close.reason, "Session idle timeout");
        }
        assert.ok(pongs > 0 && pings > 0, `pongs ${pongs}, server pings ${pings}`);
        assert.equal(busy.readyState, WebSocket.OPEN);
      } finally {
        for (const timer of timers) clearInterval(timer);
      }
      await closeAll(proxy, [busy]);
    });
  });
});

describe("CLI", () => {
  test("bad limit values are one usage error and status 2", async () => {
    for (
      const [arg, message] of [
        ["--max-connections=0", /--max-connections: invalid positive integer value: '0'/],
        ["--rate-limit=x", /--rate-limit: invalid positive integer value: 'x'/],
        ["--session-idle-timeout=-1", /--session-idle-timeout: invalid positive integer/],
        ["--allow-client=10.0.0.0/40", /--allow-client: invalid CIDR block: '10.0.0.0\/40'/],
      ] as const
    ) {
      const { code, stderr } = await runCli([arg, "0", "127.0.0.1:1"]);
      assert.equal(code, 2, stderr);
      const errors = stderr.split("\n").filter((l) => l.includes("error"));
      assert.equal(errors.length, 1, stderr);
      assert.match(errors[0]!, message);
    }
  });

  test("the command applies the limits: per-token cap with a token file, idle close", async () => {
    const file = tokenFile("vm1");
    const proc = spawnCli([
      "--token-plugin=TokenFile",
      `--token-source=${file}`,
      "--max-connections-per-token=1",
      "--session-idle-timeout=1",
      "127.0.0.1:0",
    ]);
    try {
      const port = await proc.port();
      const ws = await open(port, "/?token=vm1");
      const done = closed(ws);
      assert.equal((await refusal(port, "/?token=vm1")).status, 429);
      const close = await within(8000, done, "idle close");
      assert.deepEqual(close, { code: 1000, reason: "Session idle timeout" });
      await waitFor(() =>
        /code 429, message Too many connections for this token/.test(proc.stderr)
      );
    } finally {
      await proc.kill();
    }
  });

  test("--help lists the limits", async () => {
    const { stdout } = await runCli(["--help"]);
    for (
      const name of [
        "max-connections",
        "max-connections-per-ip",
        "max-connections-per-token",
        "rate-limit",
        "max-session-duration",
        "session-idle-timeout",
        "allow-client",
      ]
    ) assert.match(stdout, new RegExp(`--${name}=`));
  });
});
