/**
 * A deployment as an operator runs one: HAProxy in front of two proxy
 * instances that share one `redis-server` token store, HAProxy checking each
 * instance's `/readyz` on its metrics port. One instance is then stopped with
 * a drain window: new sessions go to the other, the live session on the
 * draining one flows byte-exact until it ends, and the metrics of the two
 * add up to what the test made.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import type WebSocket from "ws";
import {
  type CliProcess,
  closed,
  freePort,
  httpGet,
  openClient,
  pattern,
  receive,
  spawnCli,
  startEchoServer,
  type TcpServer,
  waitFor,
  within,
} from "./_harness.ts";
import { REDIS_SKIP, type RedisServer, startRedis } from "./_redis.ts";
import { after, before, describe, needs, test } from "./_skip.ts";

const HAPROXY_SKIP = needs(
  "haproxy",
  spawnSync("haproxy", ["-v"]).status === 0,
  "apt-get install haproxy",
);

/** One sample of `name` (with `labels`, e.g. `direction="to_target"`) in a scrape. */
function sample(text: string, name: string, labels = ""): number {
  const key = labels ? `${name}{${labels}}` : name;
  const line = text.split("\n").find((l) => l.startsWith(`${key} `));
  assert.ok(line, `no ${key} in:\n${text}`);
  return Number(line.slice(key.length + 1));
}

/** `show stat` from HAProxy's admin socket: server name → status (UP, DOWN, ...). */
function serverStates(socket: string): Promise<Map<string, string>> {
  return within(
    5000,
    new Promise((resolve, reject) => {
      const conn = net.connect(socket);
      let out = "";
      conn.setEncoding("utf8");
      conn.on("data", (d: string) => (out += d));
      conn.once("error", reject);
      conn.once("connect", () => conn.write("show stat\n"));
      conn.once("end", () => {
        const states = new Map<string, string>();
        for (const line of out.split("\n")) {
          const [backend, server, ...rest] = line.split(",");
          if (backend === "be" && server !== "BACKEND" && server) states.set(server, rest[15]!);
        }
        resolve(states);
      });
    }),
    "haproxy show stat",
  );
}

describe("HAProxy in front of two instances sharing a Redis token store", {
  skip: REDIS_SKIP || HAPROXY_SKIP,
  timeout: 120000,
}, () => {
  let tmp: string;
  let redis: RedisServer;
  let echo: TcpServer;
  let haproxy: ChildProcess | undefined;
  let haproxyOut = "";
  const instances: { proc: CliProcess; port: number; metrics: number }[] = [];
  let front: number;
  let admin: string;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-deploy-"));
    redis = await startRedis();
    echo = await startEchoServer();
    await redis.cli("SET", "desk", `127.0.0.1:${echo.port}`);
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const metrics = await freePort();
      const proc = spawnCli([
        "--token-plugin=TokenRedis",
        `--token-source=127.0.0.1:${redis.port}`,
        `--metrics=127.0.0.1:${metrics}`,
        "--drain-timeout=60",
        `127.0.0.1:${port}`,
      ]);
      instances.push({ proc, port, metrics });
    }
    await Promise.all(instances.map((i) => i.proc.port()));
    front = await freePort();
    admin = path.join(tmp, "admin.sock");
    const config = [
      "global",
      `  stats socket ${admin} mode 600 level admin`,
      "defaults",
      "  mode http",
      "  timeout connect 2s",
      "  timeout client 30s",
      "  timeout server 30s",
      "  timeout tunnel 120s",
      "frontend fe",
      `  bind 127.0.0.1:${front}`,
      "  default_backend be",
      "backend be",
      "  balance roundrobin",
      "  option httpchk GET /readyz",
      "  http-check expect status 200",
      ...instances.map((inst, k) =>
        `  server i${k} 127.0.0.1:${inst.port} check port ${inst.metrics} inter 200ms fall 1 rise 1`
      ),
    ].join("\n") + "\n";
    fs.writeFileSync(path.join(tmp, "haproxy.cfg"), config);
    haproxy = spawn("haproxy", ["-db", "-f", path.join(tmp, "haproxy.cfg")], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    haproxy.stdout!.setEncoding("utf8").on("data", (d: string) => (haproxyOut += d));
    haproxy.stderr!.setEncoding("utf8").on("data", (d: string) => (haproxyOut += d));
    await waitFor(() => fs.existsSync(admin), 10000, "haproxy start").catch(() => {
      throw new Error(`haproxy did not start: ${haproxyOut}`);
    });
    // Both servers UP by their /readyz checks (bounded).
    const end = Date.now() + 15000;
    for (;;) {
      const states = await serverStates(admin);
      if (states.get("i0") === "UP" && states.get("i1") === "UP") break;
      if (Date.now() > end) throw new Error(`not UP: ${[...states]}; ${haproxyOut}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  after(async () => {
    if (haproxy && haproxy.exitCode === null) {
      const exited = new Promise((resolve) => haproxy!.once("exit", resolve));
      process.kill(haproxy.pid!, "SIGTERM");
      await within(10000, exited, "haproxy exit").catch(() =>
        process.kill(haproxy!.pid!, "SIGKILL")
      );
    }
    await Promise.all(instances.map((i) => i.proc.kill("SIGKILL")));
    await echo?.close();
    await redis?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** A session through HAProxy with the shared token. */
  const session = () =>
    within(10000, openClient(front, ["binary"], "127.0.0.1", "/?token=desk"), "ws open");

  /** Sends `data` and expects it back byte-exact. */
  async function roundTrip(ws: WebSocket, data: Uint8Array): Promise<void> {
    const back = receive(ws, data.byteLength);
    ws.send(data);
    assert.deepEqual(await within(20000, back, "echo"), data);
  }

  const scrape = async (metrics: number) => {
    const res = await httpGet(metrics, "/metrics");
    assert.equal(res.status, 200);
    return res.body;
  };

  test("drains one instance while HAProxy sends new sessions to the other", async () => {
    let made = 0;
    let bytes = 0;
    // Sessions round-robin over both; find the instance that holds the long one.
    const warm = await session();
    made++;
    await roundTrip(warm, pattern(1000, 1));
    bytes += 1000;
    const long = await session();
    made++;
    await roundTrip(long, pattern(1000, 2));
    bytes += 1000;
    warm.close();
    await closed(warm);
    // Once the warm session has ended on its instance: one live session in all.
    let active: number[] = [];
    const until = Date.now() + 10000;
    for (;;) {
      active = await Promise.all(
        instances.map(async (i) => sample(await scrape(i.metrics), "websockify_sessions_active")),
      );
      if (active[0]! + active[1]! === 1 || Date.now() > until) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual([...active].sort(), [0, 1], `active: ${active}`);
    const draining = instances[active.indexOf(1)]!;
    const other = instances[active.indexOf(0)]!;
    const otherBefore = sample(await scrape(other.metrics), "websockify_sessions_total");

    // SIGTERM with a drain window: not ready at once, HAProxy marks it DOWN.
    process.kill(draining.proc.child.pid!, "SIGTERM");
    await waitFor(() => /draining/i.test(draining.proc.stderr), 10000, "drain start");
    const ready = await httpGet(draining.metrics, "/readyz");
    assert.equal(ready.status, 503, ready.body);
    const name = `i${instances.indexOf(draining)}`;
    const end = Date.now() + 15000;
    while ((await serverStates(admin)).get(name) !== "DOWN") {
      assert.ok(Date.now() < end, "HAProxy never marked the draining instance DOWN");
      await new Promise((r) => setTimeout(r, 100));
    }

    // New sessions all go to the other instance, and work.
    const fresh = 6;
    for (let k = 0; k < fresh; k++) {
      const ws = await session();
      made++;
      await roundTrip(ws, pattern(500, 10 + k));
      bytes += 500;
      ws.close();
      await closed(ws);
    }
    const otherAfter = sample(await scrape(other.metrics), "websockify_sessions_total");
    assert.equal(otherAfter - otherBefore, fresh);

    // The live session on the draining instance still flows, byte-exact.
    const big = pattern(1 << 20, 3);
    await roundTrip(long, big);
    bytes += big.byteLength;

    // Metrics of both add up to what was made (the draining one scraped while it still serves).
    const texts = await Promise.all(instances.map((i) => scrape(i.metrics)));
    const total = (name: string, labels = "") =>
      texts.reduce((sum, t) => sum + sample(t, name, labels), 0);
    assert.equal(total("websockify_sessions_total"), made);
    assert.equal(total("websockify_bytes_total", 'direction="to_target"'), bytes);
    assert.equal(total("websockify_bytes_total", 'direction="to_client"'), bytes);

    // The session ends by itself; the draining instance exits 0 long before its window.
    long.close();
    assert.equal((await closed(long)).code, 1005);
    assert.equal(await within(20000, draining.proc.exited, "drained exit"), 0);
    assert.equal(other.proc.child.exitCode, null, "the other instance still serves");
  });
});
