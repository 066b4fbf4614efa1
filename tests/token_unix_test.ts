/**
 * `UnixDomainSocketDirectory` with real unix socket echo servers: tokens name
 * sockets in the directory and nothing else, then end to end through the
 * proxy and the CLI.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { unixSocketDirectory } from "../adapters/stores/token_unix.ts";
import type { TokenPlugin } from "../lib/plugins/plugins.ts";
import { loadTokenPlugin, type Websockify, websockify } from "../mod.ts";
import { rawConnect } from "./_frames.ts";
import { closed, openClient, pattern, receive, spawnCli, within } from "./_harness.ts";

let tmp: string;
let dir: string;
const servers: net.Server[] = [];

/** A unix socket echo server at `file`. */
async function listenUnix(file: string): Promise<void> {
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sock.on("error", () => {});
    sock.pipe(sock);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(file, resolve);
  });
  servers.push(server);
}

before(async () => {
  // Real paths: macOS and some CI put tmpdir() behind a symlink.
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-uds-")));
  dir = path.join(tmp, "sockets");
  fs.mkdirSync(path.join(dir, "sub"), { recursive: true });
  await listenUnix(path.join(dir, "echo.sock"));
  await listenUnix(path.join(dir, "sub", "deep.sock"));
  await listenUnix(path.join(tmp, "outside.sock"));
  fs.writeFileSync(path.join(dir, "plain.txt"), "not a socket");
  fs.symlinkSync(path.join(tmp, "outside.sock"), path.join(dir, "escape.sock"));
  fs.symlinkSync(path.join(dir, "echo.sock"), path.join(dir, "alias.sock"));
});
after(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("UnixDomainSocketDirectory", () => {
  let plugin: TokenPlugin;
  before(async () => {
    plugin = await loadTokenPlugin("UnixDomainSocketDirectory", dir);
  });

  test("unixSocketDirectory() maps a token to the socket of that name", async () => {
    const echo = { kind: "unix", path: path.join(dir, "echo.sock") };
    assert.deepEqual(await plugin.lookup("echo.sock"), echo);
    // A symlink to a socket inside the directory is followed to its real path.
    assert.deepEqual(await plugin.lookup("alias.sock"), echo);
  });

  const outside = [
    "",
    ".",
    "..",
    "../outside.sock",
    "../sockets/echo.sock",
    "sub/deep.sock",
    "sub/../echo.sock",
    "sub",
    "escape.sock",
    "plain.txt",
    "missing.sock",
    "echo.sock\0",
    "echo.sock/",
  ];
  for (const token of outside) {
    test(`unixSocketDirectory() refuses ${JSON.stringify(token)}`, async () => {
      assert.equal(await plugin.lookup(token), undefined);
    });
  }

  test("unixSocketDirectory() refuses absolute paths, even to its own sockets", async () => {
    assert.equal(await plugin.lookup(path.join(dir, "echo.sock")), undefined);
    assert.equal(await plugin.lookup(path.join(tmp, "outside.sock")), undefined);
  });

  test("unixSocketDirectory() needs a directory", async () => {
    await assert.rejects(unixSocketDirectory(path.join(dir, "plain.txt")), {
      message: "UnixDomainSocketDirectory plugin requires a directory",
    });
    await assert.rejects(unixSocketDirectory(undefined), /needs --token-source=DIR/);
    await assert.rejects(
      loadTokenPlugin("UnixDomainSocketDirectory", path.join(tmp, "nope")),
      /Cannot start plugin 'UnixDomainSocketDirectory': .* requires a directory/,
    );
  });
});

/** Bytes through a WebSocket at `urlPath` come back unchanged. */
async function echoThrough(port: number, urlPath: string): Promise<void> {
  const ws = await within(5000, openClient(port, ["binary"], "127.0.0.1", urlPath), "open");
  const data = pattern(10000);
  const got = receive(ws, data.length);
  ws.send(data);
  assert.deepEqual(await within(5000, got, "echo"), data);
  ws.close();
  await within(5000, closed(ws), "close");
}

async function upgradeStatus(port: number, urlPath: string): Promise<number> {
  const client = await within(5000, rawConnect(port, {}, { path: urlPath }), "handshake");
  client.sock.destroy();
  return client.status;
}

describe("UnixDomainSocketDirectory through the proxy", () => {
  let proxy: Websockify;
  before(async () => {
    proxy = await websockify({
      listen: { hostname: "127.0.0.1", port: 0 },
      tokenPlugin: await unixSocketDirectory(dir),
    });
  });
  after(() => proxy.close());

  test("a socket token reaches the socket; escapes are 404, no token 403", async () => {
    const port = proxy.addr.port;
    await echoThrough(port, "/?token=echo.sock");
    await echoThrough(port, "/?token=alias.sock");
    assert.equal(await upgradeStatus(port, "/?token=..%2Foutside.sock"), 404);
    assert.equal(
      await upgradeStatus(port, `/?token=${encodeURIComponent(tmp)}%2Foutside.sock`),
      404,
    );
    assert.equal(await upgradeStatus(port, "/?token=escape.sock"), 404);
    assert.equal(await upgradeStatus(port, "/?token=plain.txt"), 404);
    assert.equal(await upgradeStatus(port, "/"), 403);
  });

  test("--token-plugin=UnixDomainSocketDirectory works from the command line", async () => {
    const proc = spawnCli([
      "--token-plugin=UnixDomainSocketDirectory",
      `--token-source=${dir}`,
      "127.0.0.1:0",
    ]);
    try {
      await echoThrough(await proc.port(), "/?token=echo.sock");
    } finally {
      await proc.kill("SIGKILL");
    }
  });
});
