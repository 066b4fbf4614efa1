/**
 * mod.ts as an embedder sees it: what it exports, and that the built-in
 * plugin registries it exports cannot be changed from outside.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import * as api from "../mod.ts";
import { rawConnect } from "./_frames.ts";
import {
  closed,
  openClient,
  receive,
  startEchoServer,
  startProxy,
  type TcpServer,
  within,
} from "./_harness.ts";

let echo: TcpServer;
let tmp: string;
before(async () => {
  echo = await startEchoServer();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-api-"));
});
after(async () => {
  await echo.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("mod.ts", () => {
  test("exports websockify(), the plugin loaders and errors, and no internals", () => {
    assert.deepEqual(Object.keys(api).sort(), [
      "AUTH_PLUGINS",
      "AuthenticationError",
      "ConfigError",
      "TOKEN_PLUGINS",
      "TlsConfigError",
      "UsageError",
      "createLogger",
      "loadAuthPlugin",
      "loadTokenPlugin",
      "parseTarget",
      "websockify",
    ]);
  });

  test("the built-in plugin registries cannot be replaced by an importer", async () => {
    const evil = () => ({
      lookup: () => ({ kind: "tcp" as const, hostname: "10.9.9.9", port: 1 }),
    });
    const tokens = api.TOKEN_PLUGINS as Record<string, unknown>;
    const auths = api.AUTH_PLUGINS as Record<string, unknown>;
    assert.throws(() => (tokens.TokenFile = evil), TypeError);
    assert.throws(() => (tokens.Evil = evil), TypeError);
    assert.throws(() => delete tokens.TokenFile, TypeError);
    assert.throws(() => (auths.BasicHTTPAuth = () => ({ authenticate() {} })), TypeError);
    assert.ok(Object.keys(api.TOKEN_PLUGINS).includes("TokenFile"));

    // The loaders still find the real plugins: a token file reaches the echo
    // server, and BasicHTTPAuth refuses a client without credentials.
    const file = path.join(tmp, "tokens.cfg");
    fs.writeFileSync(file, `vm1: 127.0.0.1:${echo.port}\n`);
    const proxy = await startProxy(undefined, {
      tokenPlugin: await api.loadTokenPlugin("TokenFile", file),
    });
    try {
      const ws = await openClient(proxy.addr.port, ["binary"], "127.0.0.1", "/?token=vm1");
      const got = receive(ws, 3);
      ws.send(new Uint8Array([7, 8, 9]));
      assert.deepEqual(await within(5000, got), new Uint8Array([7, 8, 9]));
      ws.close();
      await closed(ws);
    } finally {
      await proxy.close();
    }
    await assert.rejects(api.loadTokenPlugin("Evil"), api.ConfigError);
    const guarded = await startProxy(`127.0.0.1:${echo.port}`, {
      authPlugin: await api.loadAuthPlugin("BasicHTTPAuth", "user:secret"),
    });
    try {
      const raw = await rawConnect(guarded.addr.port);
      raw.sock.destroy();
      assert.equal(raw.status, 401);
    } finally {
      await guarded.close();
    }
  });
});
