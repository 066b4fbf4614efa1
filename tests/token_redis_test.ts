/**
 * `TokenRedis`: source and value parsing; tokens from a real `redis-server`
 * through the proxy (both value formats, db, password, namespace); one
 * connection however many lookups; two CLI proxies sharing one store; Redis
 * going away (fast 503s, sessions go on) and coming back (no restart).
 */
import assert from "node:assert/strict";
import { REDIS_TIMEOUT_MS } from "../lib/limits.ts";
import { parseRedisSource, parseRedisValue, splitRedisSource } from "../lib/plugins/token_redis.ts";
import {
  ConfigError,
  createLogger,
  loadTokenPlugin,
  type TokenPlugin,
  type Websockify,
} from "../mod.ts";
import { rawConnect } from "./_frames.ts";
import {
  type CliProcess,
  httpGet,
  openClient,
  pattern,
  receive,
  sleep,
  spawnCli,
  startEchoServer,
  startProxy,
  type TcpServer,
  within,
} from "./_harness.ts";
import { REDIS_SKIP, type RedisServer, startRedis } from "./_redis.ts";
import { after, before, describe, test } from "./_skip.ts";

const tcp = (hostname: string, port: number) => ({ kind: "tcp", hostname, port });

describe("TokenRedis parsing", () => {
  test("parseRedisSource() fills defaults and honours quotes", () => {
    const base = { host: "h", port: 6379, db: 0, prefix: "" };
    const cases: [string, object][] = [
      ["h", base],
      ["h:", base],
      ["h::::", base],
      ["h:6380", { ...base, port: 6380 }],
      ["h::2", { ...base, db: 2 }],
      ["h:::pw", { ...base, password: "pw" }],
      ["h::::ns", { ...base, prefix: "ns:" }],
      ['h::::"ns1:ns2"', { ...base, prefix: "ns1:ns2:" }],
      ['h:6380:1:"p:w":ns', { host: "h", port: 6380, db: 1, password: "p:w", prefix: "ns:" }],
      ["[::1]:6380", { ...base, host: "::1", port: 6380 }],
      ['"::1"::3', { ...base, host: "::1", db: 3 }],
    ];
    for (const [source, want] of cases) assert.deepEqual(parseRedisSource(source), want, source);
    assert.deepEqual(splitRedisSource('a:"b:c":d'), ["a", "b:c", "d"]);
  });

  test("parseRedisSource() refuses malformed sources with the reason", () => {
    const cases: [string | undefined, RegExp][] = [
      [undefined, /--token-source is missing/],
      ["", /host is empty/],
      [":6379", /host is empty/],
      ["h:abc", /port "abc"/],
      ["h:0", /port "0"/],
      ["h:65536", /port "65536"/],
      ["h:1:x", /db "x"/],
      ["h:1:2:3:4:5", /6 fields, at most 5/],
      ['h::::"ns', /no closing "/],
      ['h::::"a"b', /text after the closing "/],
      ["[::1:6379", /no closing ]/],
    ];
    for (const [source, why] of cases) {
      assert.throws(() => parseRedisSource(source), (error: unknown) => {
        assert.ok(error instanceof ConfigError, String(source));
        assert.match(error.message, why);
        assert.match(error.message, /format: host\[:port\[:db\[:password\[:namespace\]\]\]\]/);
        return true;
      });
    }
  });

  test("parseRedisValue() reads JSON and plain host:port, IPv6 too", () => {
    const cases: [string, object][] = [
      ["10.0.0.5:5900", tcp("10.0.0.5", 5900)],
      [" vm1.lan:5901 \n", tcp("vm1.lan", 5901)],
      ["::1:5900", tcp("::1", 5900)],
      ["[::1]:5900", tcp("::1", 5900)],
      ['{"host":"10.0.0.5:5900"}', tcp("10.0.0.5", 5900)],
      ['{"host": "::1:5900"}', tcp("::1", 5900)],
      ['{"host": "[::1]:5900"}', tcp("::1", 5900)],
      ['{"host": "h", "port": 5902}', tcp("h", 5902)],
      ['{"host": "::1", "port": "5903"}', tcp("::1", 5903)],
    ];
    for (const [value, want] of cases) assert.deepEqual(parseRedisValue(value, "k"), want, value);
  });

  test("parseRedisValue() refuses other values, naming the key", () => {
    const bad = [
      "",
      "nonsense",
      "h:port",
      "h:0",
      "h:65536",
      ":5900",
      "a b:5900",
      "{not json",
      '{"host": 5900}',
      '{"hostname": "h:5900"}',
      '{"host": "h"}',
      '{"host": "h", "port": "x"}',
    ];
    for (const value of bad) {
      assert.throws(
        () => parseRedisValue(value, "ns:tok"),
        /Redis key "ns:tok" holds .*not host:port/,
      );
    }
  });
});

/** Sends bytes through the proxy with `token` and checks the echo. */
async function echoes(port: number, token: string): Promise<void> {
  const ws = await openClient(port, [], "127.0.0.1", `/?token=${encodeURIComponent(token)}`);
  try {
    const data = pattern(4096);
    const got = receive(ws, data.length);
    ws.send(data);
    assert.deepEqual(await within(5000, got, "echo"), data);
  } finally {
    ws.close();
  }
}

/** The handshake status for `token`. */
async function status(port: number, token: string): Promise<number> {
  const client = await within(
    5000,
    rawConnect(port, {}, { path: `/?token=${token}` }),
    "handshake",
  );
  client.sock.destroy();
  return client.status;
}

/** Polls `check` every 50 ms until it is true, for at most `ms`; returns the time taken. */
async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<number> {
  const start = Date.now();
  while (!(await check().catch(() => false))) {
    if (Date.now() - start > ms) throw new Error(`${what} not reached within ${ms} ms`);
    await sleep(50);
  }
  return Date.now() - start;
}

describe("TokenRedis through the proxy", { skip: REDIS_SKIP }, () => {
  let redis: RedisServer;
  let echo: TcpServer;
  let plugin: TokenPlugin;
  let proxy: Websockify;
  const logs: string[] = [];
  before(async () => {
    [redis, echo] = await Promise.all([startRedis(), startEchoServer()]);
    plugin = await loadTokenPlugin("TokenRedis", `127.0.0.1:${redis.port}`);
    const logger = createLogger({ write: (line) => logs.push(line) });
    proxy = await startProxy(undefined, { tokenPlugin: plugin, logger });
  });
  after(async () => {
    await proxy?.close();
    await Promise.allSettled([redis?.stop(), echo?.close()]);
  });

  test("plain and JSON values proxy to the target", async () => {
    await redis.cli("SET", "plain", `127.0.0.1:${echo.port}`);
    await redis.cli("SET", "json", `{"host": "127.0.0.1:${echo.port}"}`);
    await redis.cli("SET", "json-port", `{"host": "127.0.0.1", "port": ${echo.port}}`);
    for (const token of ["plain", "json", "json-port"]) await echoes(proxy.addr.port, token);
  });

  test("an unknown token is 404; a broken value is 503 with a log line", async () => {
    assert.equal(await status(proxy.addr.port, "missing"), 404);
    await redis.cli("SET", "broken", "not a target");
    assert.equal(await status(proxy.addr.port, "broken"), 503);
    assert.ok(
      logs.some((l) => /Token lookup failed: Redis key "br\.\.#[0-9a-f]{8}" holds/.test(l)),
      logs.join("\n"),
    );
  });

  test("many lookups, concurrent too, share one connection", async () => {
    for (let i = 0; i < 20; i++) assert.equal(await status(proxy.addr.port, "missing"), 404);
    const found = await Promise.all(Array.from({ length: 200 }, () => plugin.lookup("plain")));
    assert.ok(found.every((t) => t?.kind === "tcp" && t.port === echo.port));
    assert.equal(await redis.connections("websockify"), 1);
  });

  test("a hung Redis fails lookups after the timeout, then answers again", async () => {
    redis.signal("SIGSTOP");
    try {
      const asked = Date.now();
      assert.equal(await status(proxy.addr.port, "plain"), 503);
      const took = Date.now() - asked;
      assert.ok(took >= REDIS_TIMEOUT_MS - 100 && took < REDIS_TIMEOUT_MS + 1000, `${took} ms`);
      assert.ok(logs.some((l) => /Token lookup failed: .*no answer in/.test(l)), logs.join("\n"));
    } finally {
      redis.signal("SIGCONT");
    }
    await echoes(proxy.addr.port, "plain");
  });

  test("db, password and namespace choose the key", async () => {
    const secure = await startRedis(["--requirepass", "s3:cret"], "s3:cret");
    const other = await startProxy(undefined, {
      tokenPlugin: await loadTokenPlugin("TokenRedis", `127.0.0.1:${secure.port}:3:"s3:cret":app`),
    });
    try {
      await secure.cli("-n", "3", "SET", "app:t1", `127.0.0.1:${echo.port}`);
      await secure.cli("-n", "3", "SET", "t2", `127.0.0.1:${echo.port}`); // no namespace
      await secure.cli("-n", "0", "SET", "app:t3", `127.0.0.1:${echo.port}`); // db 0
      await echoes(other.addr.port, "t1");
      assert.equal(await status(other.addr.port, "t2"), 404);
      assert.equal(await status(other.addr.port, "t3"), 404);
    } finally {
      await other.close();
      await secure.stop();
    }
  });

  test("a malformed source or a refused password or db fails start-up", async () => {
    const secure = await startRedis(["--requirepass", "right"], "right");
    try {
      const cases: [string, RegExp][] = [
        ["127.0.0.1:notaport", /port "notaport"/],
        [`127.0.0.1:${secure.port}::wrong`, /refused the connection: WRONGPASS/],
        [`127.0.0.1:${secure.port}`, /refused the connection: NOAUTH/],
        [`127.0.0.1:${redis.port}:99`, /refused the connection: .*DB index/],
      ];
      for (const [source, why] of cases) {
        await assert.rejects(within(5000, loadTokenPlugin("TokenRedis", source)), (e: Error) => {
          assert.ok(e instanceof ConfigError, e.message);
          assert.match(e.message, /^Cannot (parse TokenRedis source|start plugin 'TokenRedis')/);
          assert.match(e.message, why);
          return true;
        });
      }
    } finally {
      await secure.stop();
    }
  });

  test("starts without Redis, fails fast, then works once Redis starts", async () => {
    const late = await startRedis();
    await late.stop();
    const started = Date.now();
    const lazy = await loadTokenPlugin("TokenRedis", `127.0.0.1:${late.port}`);
    assert.ok(Date.now() - started < REDIS_TIMEOUT_MS + 2000, "start-up wait is bounded");
    try {
      const asked = Date.now();
      await assert.rejects(Promise.resolve(lazy.lookup("t")), /is unavailable: .*ECONNREFUSED/);
      // Before the lookup timeout: a refused connection is not waited for.
      const took = Date.now() - asked;
      assert.ok(took < REDIS_TIMEOUT_MS, `failed after ${took} ms`);
      await late.start();
      await late.cli("SET", "t", "127.0.0.1:5900");
      await until(async () => (await lazy.lookup("t"))?.kind === "tcp", 5000, "reconnect");
    } finally {
      await late.stop();
      const closing = Date.now();
      await within(REDIS_TIMEOUT_MS + 2000, Promise.resolve(lazy.close?.()), "close while down");
      assert.ok(Date.now() - closing < REDIS_TIMEOUT_MS + 1000);
    }
  });
});

describe("TokenRedis shared by two CLI proxies", { skip: REDIS_SKIP }, () => {
  let store: RedisServer;
  let echo: TcpServer;
  let procs: CliProcess[] = [];
  let ports: number[] = [];
  before(async () => {
    [store, echo] = await Promise.all([startRedis(), startEchoServer()]);
    const args = ["--token-plugin=TokenRedis", `--token-source=127.0.0.1:${store.port}`];
    procs = [spawnCli([...args, "127.0.0.1:0"]), spawnCli([...args, "127.0.0.1:0"])];
    ports = await Promise.all(procs.map((p) => p.port()));
  });
  after(async () => {
    await Promise.allSettled(
      procs.map((p) => within(5000, p.kill()).catch(() => p.kill("SIGKILL"))),
    );
    await Promise.allSettled([store?.stop(), echo?.close()]);
  });

  test("a token written after both started works on both", async () => {
    await store.cli("SET", "new", `{"host": "127.0.0.1:${echo.port}"}`);
    for (const port of ports) await echoes(port, "new");
  });

  test("a deleted token stops working on both", async () => {
    await store.cli("SET", "gone", `127.0.0.1:${echo.port}`);
    for (const port of ports) assert.equal(await status(port, "gone"), 101);
    await store.cli("DEL", "gone");
    for (const port of ports) assert.equal(await status(port, "gone"), 404);
  });

  test("Redis down: fast 503s, sessions and requests go on; back up: lookups work", async () => {
    await store.cli("SET", "live", `127.0.0.1:${echo.port}`);
    const session = await openClient(ports[0]!, [], "127.0.0.1", "/?token=live");
    try {
      await store.stop();
      for (const port of ports) {
        const asked = Date.now();
        assert.equal(await status(port, "live"), 503);
        assert.ok(Date.now() - asked < REDIS_TIMEOUT_MS, `503 after ${Date.now() - asked} ms`);
        assert.equal((await httpGet(port, "/")).status, 405);
      }
      const data = pattern(1000, 3);
      const got = receive(session, data.length);
      session.send(data);
      assert.deepEqual(await within(5000, got, "echo while Redis is down"), data);
      for (const proc of procs) {
        assert.match(proc.stderr, /Token lookup failed: Redis at .* is unavailable/);
      }

      await store.start(); // no persistence: the token must be written again
      await store.cli("SET", "live", `127.0.0.1:${echo.port}`);
      for (const port of ports) {
        await until(async () => (await status(port, "live")) === 101, 5000, "recovery");
        await echoes(port, "live");
      }
    } finally {
      session.close();
    }
  });
});
