/**
 * The HTTP token plugins (`BaseTokenAPI`, `JSONTokenApi`) against a real
 * token API on loopback: answers, 404s, failures, time limits, URL-encoding,
 * then end to end through the proxy.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type net from "node:net";
import { after, before, describe, test } from "node:test";
import { baseTokenApi, jsonTokenApi } from "../adapters/stores/token_api.ts";
import { targetFromObject, tokenUrl } from "../lib/plugins/token_target.ts";
import type { Target } from "../lib/types.ts";
import { loadTokenPlugin, type Websockify, websockify } from "../mod.ts";
import { rawConnect } from "./_frames.ts";
import {
  closed,
  openClient,
  pattern,
  receive,
  startEchoServer,
  type TcpServer,
  within,
} from "./_harness.ts";

const tcp = (hostname: string, port: number): Target => ({ kind: "tcp", hostname, port });

let echo: TcpServer;
let api: http.Server;
let apiUrl: string;
/** Every token the API was asked about, decoded. */
const asked: string[] = [];
const sockets = new Set<net.Socket>();

/** The API: `/text/TOKEN` answers `host:port`, `/json/TOKEN` JSON; some tokens misbehave. */
function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url!, "http://x");
  const [, format, segment] = url.pathname.split("/");
  const token = segment ? decodeURIComponent(segment) : url.searchParams.get("token") ?? "";
  asked.push(token);
  const send = (status: number, body: string): void => void res.writeHead(status).end(body);
  const known: Record<string, [string, number | string]> = {
    "vm1": ["127.0.0.1", echo.port],
    "a b/c?d#e&f": ["127.0.0.1", echo.port],
    "v6": ["::1", "5900"],
  };
  if (token === "slow") return; // never answers
  if (token === "boom") return send(500, "oops");
  if (token === "deny") return send(403, "no");
  if (token === "garbage") return send(200, format === "json" ? "{not json" : "not a target");
  if (token === "noport") return send(200, JSON.stringify({ host: "h" }));
  const found = known[token];
  if (!found) return send(404, "unknown");
  const [host, port] = found;
  if (format === "json") return send(200, JSON.stringify({ host, port }));
  send(200, `${host.includes(":") ? `[${host}]` : host}:${port}\n`);
}

before(async () => {
  echo = await startEchoServer();
  api = http.createServer(handle);
  api.on("connection", (sock: net.Socket) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
  });
  await new Promise<void>((resolve) => api.listen(0, "127.0.0.1", resolve));
  apiUrl = `http://127.0.0.1:${(api.address() as net.AddressInfo).port}`;
});
after(async () => {
  for (const sock of sockets) sock.destroy();
  await new Promise((resolve) => api.close(resolve));
  await echo.close();
});

describe("tokenUrl() and targetFromObject()", () => {
  const urls: [string, string, string][] = [
    ["http://h/t/%s", "vm1", "http://h/t/vm1"],
    ["http://h/?token=%s", "a b/c?d#e&f", "http://h/?token=a%20b%2Fc%3Fd%23e%26f"],
    ["http://h/%s?x=100%%", "é", "http://h/%C3%A9?x=100%"],
    ["http://h/%s/%s", "t", "http://h/t/t"],
  ];
  for (const [template, token, url] of urls) {
    test(`tokenUrl() fills ${template} with ${JSON.stringify(token)}`, () => {
      assert.equal(tokenUrl(template, token), url);
    });
  }

  const objects: [unknown, Target][] = [
    [{ host: "h", port: 5900 }, tcp("h", 5900)],
    [{ host: " h ", port: "5901 " }, tcp("h", 5901)],
    [{ host: "::1", port: 1 }, tcp("::1", 1)],
    [{ host: "[::1]", port: 2 }, tcp("::1", 2)],
    [{ host: "h", port: 3, extra: true }, tcp("h", 3)],
  ];
  for (const [value, target] of objects) {
    test(`targetFromObject() reads ${JSON.stringify(value)}`, () => {
      assert.deepEqual(targetFromObject(value), target);
    });
  }
  const bad = [
    null,
    "h:1",
    {},
    { host: "h" },
    { port: 1 },
    { host: "", port: 1 },
    { host: "h", port: 0 },
    { host: "h", port: 1.5 },
    { host: "h", port: "1:2" },
    { host: "h", port: true },
    { host: ["h"], port: 1 },
  ];
  for (const value of bad) {
    test(`targetFromObject() refuses ${JSON.stringify(value)}`, () => {
      assert.throws(() => targetFromObject(value), SyntaxError);
    });
  }
});

describe("BaseTokenAPI", () => {
  test("baseTokenApi() reads host:port, and 404 means an unknown token", async () => {
    const plugin = baseTokenApi(`${apiUrl}/text/%s`);
    assert.deepEqual(await plugin.lookup("vm1"), tcp("127.0.0.1", echo.port));
    assert.deepEqual(await plugin.lookup("v6"), tcp("::1", 5900));
    assert.equal(await plugin.lookup("nope"), undefined);
  });

  test("baseTokenApi() URL-encodes the token", async () => {
    asked.length = 0;
    const plugin = baseTokenApi(`${apiUrl}/text/%s`);
    assert.deepEqual(await plugin.lookup("a b/c?d#e&f"), tcp("127.0.0.1", echo.port));
    const query = baseTokenApi(`${apiUrl}/text/?token=%s`);
    assert.deepEqual(await query.lookup("a b/c?d#e&f"), tcp("127.0.0.1", echo.port));
    assert.deepEqual(asked, ["a b/c?d#e&f", "a b/c?d#e&f"]);
  });

  test("baseTokenApi() fails a lookup on errors, bad answers and no answer in time", async () => {
    const plugin = baseTokenApi(`${apiUrl}/text/%s`, { timeoutMs: 300 });
    const lookup = (token: string) => async () => await plugin.lookup(token);
    await assert.rejects(lookup("boom"), { message: "Token API answered 500" });
    await assert.rejects(lookup("deny"), { message: "Token API answered 403" });
    await assert.rejects(lookup("garbage"), /Cannot use the token API answer: Cannot parse target/);
    const start = Date.now();
    await assert.rejects(lookup("slow"), { message: "Token API did not answer within 300 ms" });
    assert.ok(Date.now() - start < 3000);
    // A port nothing listens on: the echo server's, once closed, is not guaranteed free; use 1.
    const refused = baseTokenApi("http://127.0.0.1:1/%s");
    await assert.rejects(async () => await refused.lookup("x"), /Cannot reach the token API/);
  });

  test("baseTokenApi() refuses a source that is not an http(s) URL with %s", () => {
    for (const source of [undefined, "", "http://h/lookup", "ftp://h/%s", "not a url %s"]) {
      assert.throws(() => baseTokenApi(source), /BaseTokenAPI needs --token-source=URL/);
    }
  });
});

describe("JSONTokenApi", () => {
  test("jsonTokenApi() reads host and port from JSON", async () => {
    const plugin = await loadTokenPlugin("JSONTokenApi", `${apiUrl}/json/%s`);
    assert.deepEqual(await plugin.lookup("vm1"), tcp("127.0.0.1", echo.port));
    assert.deepEqual(await plugin.lookup("v6"), tcp("::1", 5900));
    assert.equal(await plugin.lookup("nope"), undefined);
  });

  test("jsonTokenApi() fails a lookup on bad JSON or a missing field", async () => {
    const plugin = jsonTokenApi(`${apiUrl}/json/%s`);
    await assert.rejects(async () => await plugin.lookup("garbage"), /Cannot use the token API/);
    await assert.rejects(async () => await plugin.lookup("noport"), /"port" must be a number/);
  });
});

describe("token APIs through the proxy", () => {
  const proxies: Websockify[] = [];
  after(() => Promise.all(proxies.map((p) => p.close())));

  for (const [name, format] of [["BaseTokenAPI", "text"], ["JSONTokenApi", "json"]]) {
    test(`${name}: known token 101 and echo, unknown 404, failing API 503`, async () => {
      const proxy = await websockify({
        listen: { hostname: "127.0.0.1", port: 0 },
        tokenPlugin: await loadTokenPlugin(name!, `${apiUrl}/${format}/%s`),
      });
      proxies.push(proxy);
      const port = proxy.addr.port;
      const ws = await within(5000, openClient(port, ["binary"], "127.0.0.1", "/?token=vm1"));
      const data = pattern(2000);
      const got = receive(ws, data.length);
      ws.send(data);
      assert.deepEqual(await within(5000, got, "echo"), data);
      ws.close();
      await within(5000, closed(ws));
      const status = async (path: string) => {
        const client = await within(5000, rawConnect(port, {}, { path }), "handshake");
        client.sock.destroy();
        return client.status;
      };
      assert.equal(await status("/?token=a+b%2Fc%3Fd%23e%26f"), 101);
      assert.equal(await status("/?token=nope"), 404);
      assert.equal(await status("/?token=boom"), 503);
      assert.equal(await status("/"), 403);
    });
  }
});
