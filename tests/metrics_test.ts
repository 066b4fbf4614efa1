/**
 * `--metrics`: `/metrics` (checked by `promtool`), `/healthz` and `/readyz`
 * on a second listener, after real sessions; `/readyz` follows the token
 * store; with `--workers` one scrape sums every process.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import type net from "node:net";
import os from "node:os";
import path from "node:path";
import type { Websockify } from "../adapters/websockify.ts";
import { tokenRedis } from "../adapters/stores/token_redis.ts";
import { tokenFile } from "../adapters/stores/token_file.ts";
import { baseTokenApi } from "../adapters/stores/token_api.ts";
import { parseCliArgs } from "../lib/cli/args.ts";
import { UsageError } from "../lib/errors.ts";
import type { TokenPlugin } from "../lib/plugins/plugins.ts";
import {
  assertStartError,
  closed,
  freePort,
  httpGet,
  openClient,
  rawHttp,
  receive,
  runCli,
  spawnCli,
  startEchoServer,
  startProxy,
  type TcpServer,
  waitFor,
  within,
} from "./_harness.ts";
import { REDIS_SKIP, type RedisServer, startRedis } from "./_redis.ts";
import { after, before, describe, needs, test } from "./_skip.ts";

const PROMTOOL = needs(
  "promtool",
  spawnSync("promtool", ["--version"]).status === 0,
  "apt-get install prometheus",
);

/** GETs `path` from a metrics listener. */
async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await within(10000, httpGet(port, path), `GET ${path}`);
  return { status: res.status, body: res.body };
}

/** The value of one sample (`name{labels}`) in a text exposition, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Asserts that `promtool check metrics` accepts `text`. */
function promtool(text: string): void {
  const result = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
}

/** One echo session: `bytes` out and back, then a normal close. */
async function echoSession(port: number, bytes: number, path = "/"): Promise<void> {
  const ws = await openClient(port, ["binary"], "127.0.0.1", path);
  const got = receive(ws, bytes);
  ws.send(new Uint8Array(bytes).fill(7));
  await within(5000, got, "echo");
  ws.close();
  await closed(ws);
}

const SLOW = { timeout: 60000 };

describe("--metrics in one process", SLOW, () => {
  let echo: TcpServer;
  let proxy: Websockify;
  let deadPort: number;
  const tokens: TokenPlugin = {
    lookup: (token) =>
      token === "echo"
        ? { kind: "tcp", hostname: "127.0.0.1", port: echo.port }
        : token === "dead"
        ? { kind: "tcp", hostname: "127.0.0.1", port: deadPort }
        : undefined,
  };
  before(async () => {
    echo = await startEchoServer();
    deadPort = await freePort();
    proxy = await startProxy(undefined, { tokenPlugin: tokens, metrics: { port: 0 } });
  });
  after(async () => {
    await proxy?.close();
    await echo?.close();
  });

  test("serves on 127.0.0.1 by default, apart from the proxy", () => {
    assert.equal(proxy.metricsAddr?.hostname, "127.0.0.1");
    assert.notEqual(proxy.metricsAddr?.port, proxy.addr.port);
  });

  test("/metrics counts sessions, refusals, bytes and failed connects", SLOW, async () => {
    const port = proxy.metricsAddr!.port;
    // A live session's bytes count before it ends.
    const ws = await openClient(proxy.addr.port, ["binary"], "127.0.0.1", "/?token=echo");
    const got = receive(ws, 300);
    ws.send(new Uint8Array(300));
    await within(5000, got, "echo");
    let text = (await get(port, "/metrics")).body;
    assert.equal(sample(text, "websockify_sessions_active"), 1, text);
    assert.equal(sample(text, 'websockify_bytes_total{direction="to_target"}'), 300, text);
    assert.equal(sample(text, 'websockify_bytes_total{direction="to_client"}'), 300, text);
    ws.close();
    await closed(ws);

    await echoSession(proxy.addr.port, 50, "/?token=echo");
    // Refused by the token plugin (404) and by the handshake checks (400).
    const upgrade = (path: string, key: string) =>
      within(
        10000,
        rawHttp(
          proxy.addr.port,
          `GET ${path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n` +
            `Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n${key}\r\n`,
        ),
        "refusal",
      );
    const unknown = await upgrade(
      "/?token=nope",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    );
    assert.equal(unknown.status, 404);
    const bad = await upgrade("/?token=echo", "");
    assert.equal(bad.status, 400);
    // Accepted (101), then the target refuses the connection.
    const failed = await openClient(proxy.addr.port, ["binary"], "127.0.0.1", "/?token=dead");
    assert.equal((await within(10000, closed(failed), "1011")).code, 1011);

    await waitFor(() => proxy.sessions === 0, 10000, "sessions ended");
    text = (await get(port, "/metrics")).body;
    const expect: Record<string, number> = {
      "websockify_sessions_active": 0,
      "websockify_sessions_total": 3,
      'websockify_handshakes_refused_total{status="404"}': 1,
      'websockify_handshakes_refused_total{status="400"}': 1,
      'websockify_bytes_total{direction="to_target"}': 350,
      'websockify_bytes_total{direction="to_client"}': 350,
      "websockify_session_duration_seconds_count": 3,
      "websockify_target_connect_seconds_count": 3,
      "websockify_target_connect_failures_total": 1,
      "websockify_token_lookup_seconds_count": 4,
    };
    for (const [series, value] of Object.entries(expect)) {
      assert.equal(sample(text, series), value, `${series} in\n${text}`);
    }
    for (const name of ["resident_memory_bytes", "open_fds", "cpu_seconds_total"]) {
      assert.ok(sample(text, `process_${name}`)! > 0, `process_${name} in\n${text}`);
    }
    const start = sample(text, "process_start_time_seconds")!;
    assert.ok(Math.abs(start - Date.now() / 1000) < 3600, text);
  });

  test("promtool accepts the scrape", { skip: PROMTOOL }, async () => {
    promtool((await get(proxy.metricsAddr!.port, "/metrics")).body);
  });

  test("/healthz answers 200, /readyz 200 with its checks, others 404", async () => {
    const port = proxy.metricsAddr!.port;
    assert.equal((await get(port, "/healthz")).status, 200);
    const ready = await get(port, "/readyz");
    assert.equal(ready.status, 200);
    assert.deepEqual(JSON.parse(ready.body), {
      ready: true,
      checks: { listening: true, draining: false },
    });
    assert.equal((await get(port, "/nope")).status, 404);
  });

  test("/readyz is 503 once --timeout stopped listening", SLOW, async () => {
    const timed = await startProxy(`127.0.0.1:${echo.port}`, { timeout: 1, metrics: { port: 0 } });
    // A live session keeps the server (and its metrics listener) up past the timeout.
    const ws = await openClient(timed.addr.port, ["binary"]);
    try {
      const port = timed.metricsAddr!.port;
      let ready = await get(port, "/readyz");
      assert.equal(ready.status, 200, ready.body);
      const deadline = Date.now() + 15000;
      while ((ready = await get(port, "/readyz")).status === 200 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(ready.status, 503, ready.body);
      assert.equal(JSON.parse(ready.body).checks.listening, false);
    } finally {
      ws.close();
      await closed(ws);
      await timed.close();
    }
  });

  test("without a token plugin there is no token lookup histogram", async () => {
    const plain = await startProxy(`127.0.0.1:${echo.port}`, { metrics: { port: 0 } });
    try {
      const text = (await get(plain.metricsAddr!.port, "/metrics")).body;
      assert.match(text, /^websockify_sessions_total 0$/m);
      assert.doesNotMatch(text, /websockify_token_lookup_seconds/);
    } finally {
      await plain.close();
    }
  });
});

describe("refusals from the admission limits", SLOW, () => {
  let echo: TcpServer;
  before(async () => {
    echo = await startEchoServer();
  });
  after(() => echo.close());

  /** The status a WebSocket client gets instead of its 101. */
  function refusedWith(port: number): Promise<number> {
    const raw = `GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
    return within(10000, rawHttp(port, raw), "refusal").then((res) => res.status);
  }

  test("are counted by status: 503 (server full), 403 (client not allowed)", async () => {
    const full = await startProxy(`127.0.0.1:${echo.port}`, {
      maxConnections: 1,
      metrics: { port: 0 },
    });
    const closedDoor = await startProxy(`127.0.0.1:${echo.port}`, {
      allowClient: ["10.0.0.0/8"],
      metrics: { port: 0 },
    });
    try {
      const ws = await openClient(full.addr.port, ["binary"]);
      assert.equal(await refusedWith(full.addr.port), 503);
      assert.equal(await refusedWith(closedDoor.addr.port), 403);
      assert.equal(await refusedWith(closedDoor.addr.port), 403);
      const one = (await get(full.metricsAddr!.port, "/metrics")).body;
      assert.equal(sample(one, 'websockify_handshakes_refused_total{status="503"}'), 1);
      assert.equal(sample(one, "websockify_sessions_active"), 1);
      const other = (await get(closedDoor.metricsAddr!.port, "/metrics")).body;
      assert.equal(sample(other, 'websockify_handshakes_refused_total{status="403"}'), 2);
      ws.close();
      await closed(ws);
    } finally {
      await Promise.all([full.close(), closedDoor.close()]);
    }
  });
});

describe("/readyz and a Redis token store", { ...SLOW, skip: REDIS_SKIP }, () => {
  let redis: RedisServer;
  let proxy: Websockify;
  before(async () => {
    redis = await startRedis();
    proxy = await startProxy(undefined, {
      tokenPlugin: await tokenRedis(`127.0.0.1:${redis.port}`),
      metrics: { port: 0 },
    });
  });
  after(async () => {
    await proxy?.close();
    await redis?.stop();
  });

  test("503 with the reason while Redis is down, 200 again once it is back", SLOW, async () => {
    const port = proxy.metricsAddr!.port;
    let ready = await get(port, "/readyz");
    assert.equal(ready.status, 200, ready.body);
    assert.deepEqual(JSON.parse(ready.body).checks, {
      listening: true,
      draining: false,
      tokens: "ok",
    });
    await redis.stop();
    ready = await get(port, "/readyz");
    assert.equal(ready.status, 503, ready.body);
    const body = JSON.parse(ready.body);
    assert.equal(body.ready, false);
    assert.match(body.checks.tokens, /Redis at 127\.0\.0\.1:\d+/);
    assert.equal(body.checks.listening, true);
    // /healthz is about this process only.
    assert.equal((await get(port, "/healthz")).status, 200);
    await redis.start();
    const deadline = Date.now() + 20000;
    while ((ready = await get(port, "/readyz")).status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(ready.status, 200, ready.body);
  });

  test("a hung Redis makes /readyz answer 503 in bounded time", SLOW, async () => {
    redis.signal("SIGSTOP");
    try {
      const ready = await within(10000, get(proxy.metricsAddr!.port, "/readyz"), "readyz");
      assert.equal(ready.status, 503, ready.body);
    } finally {
      redis.signal("SIGCONT");
    }
  });
});

describe("/readyz and other token stores", SLOW, () => {
  /** The /readyz status and tokens check of a proxy with `plugin`. */
  async function readiness(plugin: TokenPlugin): Promise<{ status: number; tokens: string }> {
    const proxy = await startProxy(undefined, { tokenPlugin: plugin, metrics: { port: 0 } });
    try {
      const res = await get(proxy.metricsAddr!.port, "/readyz");
      return { status: res.status, tokens: JSON.parse(res.body).checks.tokens };
    } finally {
      await proxy.close();
    }
  }

  test("a token file: ready while readable", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "metrics-test-"));
    try {
      const file = path.join(dir, "tokens");
      fs.writeFileSync(file, "vm1: 127.0.0.1:5900\n");
      const plugin = await tokenFile(file);
      assert.deepEqual(await readiness(plugin), { status: 200, tokens: "ok" });
      fs.rmSync(file);
      const down = await readiness(plugin);
      assert.equal(down.status, 503);
      assert.match(down.tokens, /tokens/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a token API: ready while its server answers", async () => {
    const api = http.createServer((_, res) => res.end("127.0.0.1:5900"));
    await new Promise<void>((resolve) => api.listen(0, "127.0.0.1", resolve));
    const port = (api.address() as net.AddressInfo).port;
    const plugin = baseTokenApi(`http://127.0.0.1:${port}/lookup?token=%s`);
    try {
      assert.deepEqual(await readiness(plugin), { status: 200, tokens: "ok" });
    } finally {
      await new Promise((resolve) => api.close(resolve));
    }
    const down = await readiness(plugin);
    assert.equal(down.status, 503);
    assert.match(down.tokens, /Cannot reach the token API/);
  });

  test("a store that never answers: 503 in bounded time", async () => {
    const hung: TokenPlugin = { lookup: () => undefined, ready: () => new Promise(() => {}) };
    const down = await within(10000, readiness(hung), "readyz");
    assert.equal(down.status, 503);
    assert.match(down.tokens, /no answer in \d+ ms/);
  });
});

describe("--metrics on the command line", SLOW, () => {
  let echo: TcpServer;
  before(async () => (echo = await startEchoServer()));
  after(() => echo.close());

  test("the proxy's own port is refused with one line", SLOW, async () => {
    const port = await freePort();
    const result = await runCli([`--metrics=${port}`, `127.0.0.1:${port}`, "127.0.0.1:5900"]);
    assertStartError(result, /--metrics cannot use the proxy's own port/);
  });

  test("--metrics=[ADDR:]PORT: a port alone means 127.0.0.1", () => {
    const metricsOf = (arg: string) => {
      const options = parseCliArgs([`--metrics=${arg}`, "6080", "h:5900"]);
      return options.help ? undefined : options.metrics;
    };
    assert.deepEqual(metricsOf("9100"), { hostname: "127.0.0.1", port: 9100 });
    assert.deepEqual(metricsOf("0.0.0.0:9100"), { hostname: "0.0.0.0", port: 9100 });
    assert.deepEqual(metricsOf("[::1]:9100"), { hostname: "::1", port: 9100 });
    assert.throws(() => metricsOf("x"), UsageError);
  });

  test("a metrics port in use is one line naming --metrics", SLOW, async () => {
    const busy = await startEchoServer();
    try {
      const result = await runCli([`--metrics=${busy.port}`, "127.0.0.1:0", "127.0.0.1:5900"]);
      assertStartError(
        result,
        new RegExp(`Cannot listen on 127\\.0\\.0\\.1:${busy.port} for --metrics`),
      );
    } finally {
      await busy.close();
    }
  });

  test("--help describes --metrics", async () => {
    const { stdout } = await runCli(["--help"]);
    assert.match(stdout, /--metrics=\[ADDR:\]PORT/);
  });

  test("--workers=2: one scrape sums the sessions of both processes", SLOW, async () => {
    const metricsPort = await freePort();
    const proc = spawnCli([
      "--workers=2",
      `--metrics=${metricsPort}`,
      "127.0.0.1:0",
      `127.0.0.1:${echo.port}`,
    ]);
    try {
      const port = await proc.port();
      await waitFor(() => proc.stderr.includes("Worker listening on "), 15000, "worker 2");
      // Sessions until both workers served one (each prefixes its lines w1, w2).
      let made = 0;
      const served = () =>
        new Set([...proc.stderr.matchAll(/ (w\d) #\d+ [^\n]*: open /g)].map((m) => m[1]));
      while (made < 40 && (made < 4 || served().size < 2)) {
        await echoSession(port, 10);
        made++;
      }
      assert.equal(served().size, 2, proc.stderr);
      await waitFor(
        () => (proc.stderr.match(/: closed /g) ?? []).length === made,
        10000,
        "closes",
      );
      const text = (await get(metricsPort, "/metrics")).body;
      assert.equal(sample(text, "websockify_sessions_total"), made, text);
      assert.equal(sample(text, 'websockify_bytes_total{direction="to_target"}'), made * 10, text);
      assert.equal(sample(text, "websockify_session_duration_seconds_count"), made, text);
      assert.equal(sample(text, "websockify_sessions_active"), 0, text);
      assert.ok(sample(text, "process_start_time_seconds")! > 0, text);
      if (!PROMTOOL) promtool(text);
      const ready = await get(metricsPort, "/readyz");
      assert.equal(ready.status, 200, ready.body);
      // The workers' socket directory goes with the supervisor.
      const pid = proc.child.pid!;
      const dirs = () =>
        fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(`websockify-metrics-${pid}-`));
      assert.equal(dirs().length, 1);
      assert.equal(await within(15000, proc.kill("SIGTERM"), "exit"), 0);
      assert.deepEqual(dirs(), []);
    } finally {
      await proc.kill("SIGKILL");
    }
  });
});
