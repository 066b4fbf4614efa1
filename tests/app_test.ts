/**
 * The HTTP app in process, without sockets: `upgrade()` returns a decision
 * (accept with a subprotocol and a target, or refuse with a response), and
 * Hono's `request()` answers plain requests.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type AppOptions, createApp } from "../lib/http/app.ts";
import { createLogger } from "../lib/log.ts";
import { basicHttpAuth, createAuthenticate } from "../lib/plugins/auth.ts";
import { createTokenResolver } from "../lib/plugins/token.ts";
import type { ConnInfo, Target, UpgradeDecision } from "../lib/types.ts";

const TARGET: Target = { kind: "tcp", hostname: "127.0.0.1", port: 5900 };
const INFO: ConnInfo = { id: 7, remote: { hostname: "127.0.0.1", port: 40000 }, tls: false };
const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

/** An app with a fixed target (unless `options` says otherwise) and its log lines. */
function makeApp(options: Partial<AppOptions> = {}) {
  const lines: string[] = [];
  const log = createLogger({ write: (line) => lines.push(line) });
  const app = createApp({ resolveTarget: () => TARGET, target: TARGET, log, ...options });
  return { app, lines };
}

/** A WebSocket upgrade request; `headers` replace or (as null) drop the defaults. */
function upgradeRequest(
  headers: Record<string, string | null> = {},
  url = "http://proxy.example/websockify",
  method = "GET",
): Request {
  const all: Record<string, string | null> = {
    host: "proxy.example",
    upgrade: "websocket",
    connection: "Upgrade",
    "sec-websocket-version": "13",
    "sec-websocket-key": KEY,
    "sec-websocket-protocol": "binary",
    ...headers,
  };
  const pairs = Object.entries(all).filter((e): e is [string, string] => e[1] !== null);
  return new Request(url, { method, headers: pairs });
}

/** Asserts a refusal and returns its response. */
function refused(decision: UpgradeDecision): Response {
  assert.equal(decision.kind, "refuse", `expected a refusal, got ${JSON.stringify(decision)}`);
  return (decision as { response: Response }).response;
}

async function assertRefusal(decision: UpgradeDecision, status: number, reason: string) {
  const res = refused(decision);
  assert.equal(res.status, status);
  assert.equal(res.statusText, reason);
  assert.equal(await res.text(), `${reason}\n`);
}

describe("the app decides upgrades", () => {
  for (
    const [offered, protocol] of [["binary", "binary"], ["base64", "base64"], [
      "base64, binary",
      "binary",
    ], [null, ""]] as const
  ) {
    test(`a good handshake offering ${offered} is accepted with '${protocol}'`, async () => {
      const { app } = makeApp();
      const decision = await app.upgrade(
        upgradeRequest({ "sec-websocket-protocol": offered }),
        INFO,
      );
      assert.deepEqual(decision, { kind: "accept", protocol, target: TARGET });
    });
  }

  const refusals: [string, Record<string, string | null>, string][] = [
    [
      "a missing version",
      { "sec-websocket-version": null },
      "Missing Sec-WebSocket-Version header",
    ],
    ["a bad version", { "sec-websocket-version": "12" }, "Unsupported protocol version 12"],
    ["a missing key", { "sec-websocket-key": null }, "Missing Sec-WebSocket-Key header"],
    [
      "a bad protocol list",
      { "sec-websocket-protocol": "chat, superchat" },
      "Invalid protocol selected",
    ],
  ];
  for (const [what, headers, reason] of refusals) {
    test(`${what} is refused with 400 and upstream's text`, async () => {
      const { app, lines } = makeApp();
      await assertRefusal(await app.upgrade(upgradeRequest(headers), INFO), 400, reason);
      assert.ok(
        lines.some((line) => line.endsWith(`#7 127.0.0.1:40000: code 400, message ${reason}`)),
        lines.join("\n"),
      );
    });
  }

  test("an upgrade by POST is refused with 405, by an unknown method with 501", async () => {
    const { app } = makeApp();
    const post = await app.upgrade(upgradeRequest({}, undefined, "POST"), INFO);
    await assertRefusal(post, 405, "Method Not Allowed");
    const odd = await app.upgrade(upgradeRequest({}, undefined, "PROPFIND"), INFO);
    await assertRefusal(odd, 501, "Unsupported method ('PROPFIND')");
  });

  test("the token resolver picks the target or refuses with 403 and 404", async () => {
    const other: Target = { kind: "unix", path: "/run/vm1.sock" };
    const resolveTarget = createTokenResolver({
      plugin: { lookup: (token) => (token === "vm1" ? other : undefined) },
      log: createLogger({ write: () => {} }),
    });
    const { app } = makeApp({ resolveTarget, target: undefined });
    const url = "http://proxy.example/websockify";
    const known = await app.upgrade(upgradeRequest({}, `${url}?token=vm1`), INFO);
    assert.deepEqual(known, { kind: "accept", protocol: "binary", target: other, token: "vm1" });
    await assertRefusal(await app.upgrade(upgradeRequest({}, url), INFO), 403, "Token not present");
    const unknown = await app.upgrade(upgradeRequest({}, `${url}?token=vm2`), INFO);
    await assertRefusal(unknown, 404, "Token not found");
  });

  test("an auth refusal comes before the token lookup, with the plugin's answer", async () => {
    let lookups = 0;
    const log = createLogger({ write: () => {} });
    const resolveTarget = createTokenResolver({
      plugin: { lookup: () => (lookups++, TARGET) },
      log,
    });
    const authenticate = createAuthenticate(basicHttpAuth("alice:secret"), log);
    const { app } = makeApp({ resolveTarget, target: undefined, authenticate });
    const url = "http://proxy.example/websockify?token=vm1";
    const none = refused(await app.upgrade(upgradeRequest({}, url), INFO));
    assert.equal(none.status, 401);
    assert.equal(none.headers.get("www-authenticate"), 'Basic realm="Websockify"');
    const wrong = { authorization: `Basic ${btoa("alice:guess")}` };
    assert.equal(refused(await app.upgrade(upgradeRequest(wrong, url), INFO)).status, 401);
    assert.equal(lookups, 0);
    const right = { authorization: `Basic ${btoa("alice:secret")}` };
    const accepted = await app.upgrade(upgradeRequest(right, url), INFO);
    assert.deepEqual(accepted, {
      kind: "accept",
      protocol: "binary",
      target: TARGET,
      token: "vm1",
    });
    assert.equal(lookups, 1);
  });

  test("the authenticate hook sees the fixed target; a hook that throws gets a 500", async () => {
    const seen: (Target | undefined)[] = [];
    const { app } = makeApp({
      authenticate: (_req, _info, target) => {
        seen.push(target);
        throw new Error("hook broke");
      },
    });
    const res = refused(await app.upgrade(upgradeRequest(), INFO));
    assert.equal(res.status, 500);
    assert.equal(await res.text(), "Internal Server Error");
    assert.deepEqual(seen, [TARGET]);
  });
});

describe("the app answers plain requests", () => {
  const env = { info: INFO };

  test("GET, HEAD and POST without --web get 405", async () => {
    const { app } = makeApp();
    for (const method of ["GET", "HEAD", "POST"]) {
      const res = await app.request("http://proxy.example/", { method }, env);
      assert.equal(res.status, 405, method);
      assert.equal(res.statusText, "Method Not Allowed");
      assert.equal(await res.text(), method === "HEAD" ? "" : "Method Not Allowed\n");
    }
  });

  test("an unknown method gets 501 with upstream's text", async () => {
    const { app, lines } = makeApp();
    const res = await app.request("http://proxy.example/", { method: "PROPFIND" }, env);
    assert.equal(res.status, 501);
    assert.equal(await res.text(), "Unsupported method ('PROPFIND')\n");
    assert.ok(
      lines.some((line) => line.endsWith("code 501, message Unsupported method ('PROPFIND')")),
    );
  });

  test("a plain request with upgrade headers is not accepted", async () => {
    const { app } = makeApp();
    const res = await app.request(upgradeRequest(), undefined, env);
    assert.equal(res.status, 405);
  });
});
