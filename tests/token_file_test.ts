/**
 * The file-backed token plugins (`TokenFile`, `ReadOnlyTokenFile`,
 * `TokenFileName`): the parsers as tables, the plugins on real files, then
 * end to end through the proxy and the CLI, refusals as HTTP statuses.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { readOnlyTokenFile, tokenFile, tokenFileName } from "../adapters/stores/token_file.ts";
import { parseTokenFiles } from "../lib/plugins/token_file.ts";
import { parseHostPort } from "../lib/plugins/token_target.ts";
import type { Target } from "../lib/types.ts";
import { loadTokenPlugin, type Websockify, websockify } from "../mod.ts";
import { encodeFrame, rawConnect } from "./_frames.ts";
import {
  closed,
  openClient,
  pattern,
  receive,
  runCli,
  spawnCli,
  startEchoServer,
  type TcpServer,
  waitFor,
  within,
} from "./_harness.ts";

const tcp = (hostname: string, port: number): Target => ({ kind: "tcp", hostname, port });

let tmp: string;
let echo: TcpServer;
let echoAddr: string;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-tokfile-"));
  echo = await startEchoServer();
  echoAddr = `127.0.0.1:${echo.port}`;
});
after(async () => {
  await echo.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Writes `text` to a fresh file under the test directory. */
let files = 0;
function write(text: string, name = `tokens${++files}.cfg`): string {
  const file = path.join(tmp, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

/** Sends bytes through a WebSocket to `path` and expects them back. */
async function echoThrough(port: number, urlPath: string): Promise<void> {
  const ws = await within(5000, openClient(port, ["binary"], "127.0.0.1", urlPath), "open");
  const data = pattern(3000);
  const got = receive(ws, data.length);
  ws.send(data);
  assert.deepEqual(await within(5000, got, "echo"), data);
  ws.close();
  await within(5000, closed(ws), "close");
}

/** The status of an upgrade to `urlPath`. */
async function upgradeStatus(
  port: number,
  urlPath: string,
  headers: Record<string, string> = {},
): Promise<number> {
  const client = await within(5000, rawConnect(port, headers, { path: urlPath }), "handshake");
  client.sock.destroy();
  return client.status;
}

describe("parseHostPort()", () => {
  const good: [string, Target][] = [
    ["vnc.example:5900", tcp("vnc.example", 5900)],
    ["  10.0.0.5:5901\n", tcp("10.0.0.5", 5901)],
    ["::1:5900", tcp("::1", 5900)],
    ["[::1]:5900", tcp("::1", 5900)],
    ["[fe80::1%eth0]:1", tcp("fe80::1%eth0", 1)],
    ["h:65535", tcp("h", 65535)],
  ];
  for (const [text, target] of good) {
    test(`parseHostPort() reads ${JSON.stringify(text)}`, () => {
      assert.deepEqual(parseHostPort(text), target);
    });
  }
  const bad = [
    "host",
    "host:",
    ":5900",
    "host:0",
    "host:65536",
    "host:59a",
    "[::1]",
    "a b:1",
    "h:1 #",
  ];
  for (const text of bad) {
    test(`parseHostPort() refuses ${JSON.stringify(text)}`, () => {
      assert.throws(() => parseHostPort(text), SyntaxError);
    });
  }
});

describe("parseTokenFiles()", () => {
  test("parseTokenFiles() reads tokens, skips comments and blank lines, strips lines", () => {
    const text = "# VMs\n\nvm1: 10.0.0.5:5900\n   vm2: host2:5901   \nvm3:\thost3:5902\r\n" +
      "a b: [::1]:5903\n";
    assert.deepEqual(
      parseTokenFiles([text], "f"),
      new Map([
        ["vm1", tcp("10.0.0.5", 5900)],
        ["vm2", tcp("host2", 5901)],
        ["vm3", tcp("host3", 5902)],
        ["a b", tcp("::1", 5903)],
      ]),
    );
  });

  test("parseTokenFiles() lets the last duplicate win, across files too", () => {
    const targets = parseTokenFiles(["t: a:1\nt: b:2\n", "t: c:3\n"], "dir");
    assert.deepEqual(targets.get("t"), tcp("c", 3));
  });

  const errors: [string[], string][] = [
    [["vm1:10.0.0.5:5900\n"], "Syntax error in S on line 1"],
    [["ok: h:1\n\n# c\nbroken\n"], "Syntax error in S on line 4"],
    [["a: b: c:1\n"], "Syntax error in S on line 1"],
    [["tok: 5900\n"], "Syntax error in S on line 1"],
    [["tok: host:99999\n"], "Syntax error in S on line 1"],
    [["a: h:1\n# x\n", "\nb h:2\n"], "Syntax error in S on line 4"],
    [["a: h:1", "b h:2"], "Syntax error in S on line 2"],
    [["a: h:1\r\n\r\n", "x"], "Syntax error in S on line 3"],
  ];
  for (const [texts, message] of errors) {
    test(`parseTokenFiles() reports ${JSON.stringify(texts)} as "${message}"`, () => {
      assert.throws(() => parseTokenFiles(texts, "S"), { name: "SyntaxError", message });
    });
  }
});

describe("TokenFile", () => {
  test("tokenFile() reads every regular file of a directory, by name", async () => {
    const dir = path.join(tmp, "dir1");
    write("a: h1:1\nshared: h1:1\n", "dir1/a.cfg");
    write("b: h2:2\nshared: h2:2\n", "dir1/b.cfg");
    fs.mkdirSync(path.join(dir, "sub.cfg"));
    const plugin = await tokenFile(dir);
    assert.deepEqual(await plugin.lookup("a"), tcp("h1", 1));
    assert.deepEqual(await plugin.lookup("b"), tcp("h2", 2));
    assert.deepEqual(await plugin.lookup("shared"), tcp("h2", 2));
    assert.equal(await plugin.lookup("sub.cfg"), undefined);
  });

  test("tokenFile() counts lines across a directory's files in errors", async () => {
    const dir = path.join(tmp, "dir2");
    write("# one\na: h:1\n", "dir2/1.cfg");
    write("\nbad line\n", "dir2/2.cfg");
    await assert.rejects(tokenFile(dir), { message: `Syntax error in ${dir} on line 4` });
  });

  test("tokenFile() picks up edits, and a later syntax error fails lookups until fixed", async () => {
    const file = write("t: h:1\n");
    const plugin = await tokenFile(file, { checkIntervalMs: 0 });
    assert.deepEqual(await plugin.lookup("t"), tcp("h", 1));
    fs.writeFileSync(file, "t: other:22\nnew: h:3\n");
    assert.deepEqual(await plugin.lookup("t"), tcp("other", 22));
    assert.deepEqual(await plugin.lookup("new"), tcp("h", 3));
    fs.writeFileSync(file, "t: h:1\noops\n");
    await assert.rejects(async () => await plugin.lookup("t"), {
      message: `Syntax error in ${file} on line 2`,
    });
    fs.writeFileSync(file, "t: fixed:4\n");
    assert.deepEqual(await plugin.lookup("t"), tcp("fixed", 4));
  });

  test("tokenFile() sees files added to a directory", async () => {
    const dir = path.join(tmp, "dir3");
    write("a: h:1\n", "dir3/a");
    const plugin = await tokenFile(dir, { checkIntervalMs: 0 });
    assert.equal(await plugin.lookup("b"), undefined);
    write("b: h:2\n", "dir3/b");
    assert.deepEqual(await plugin.lookup("b"), tcp("h", 2));
  });

  test("tokenFile() sees same-size rewrites made at once, by default, 50 in a row", async () => {
    const file = write("t: h:10\n");
    const plugin = await tokenFile(file);
    assert.deepEqual(await plugin.lookup("t"), tcp("h", 10));
    // Same size, within one timestamp tick: only the racy-read rule catches these.
    for (let port = 11; port < 61; port++) {
      fs.writeFileSync(file, `t: h:${port}\n`);
      assert.deepEqual(await plugin.lookup("t"), tcp("h", port));
    }
  });

  test("tokenFile() checks for changes at most once per interval", async () => {
    const file = write("t: h:1\n");
    const plugin = await tokenFile(file, { checkIntervalMs: 60_000 });
    fs.writeFileSync(file, "t: h:2\n");
    assert.deepEqual(await plugin.lookup("t"), tcp("h", 1));
  });

  test("readOnlyTokenFile() reads once", async () => {
    const file = write("t: h:1\n");
    const plugin = await readOnlyTokenFile(file);
    fs.writeFileSync(file, "t: h:2\nmore: h:3\n");
    assert.deepEqual(await plugin.lookup("t"), tcp("h", 1));
    assert.equal(await plugin.lookup("more"), undefined);
  });

  test("loadTokenPlugin() fails start-up on a syntax error, a missing file, no source", async () => {
    const bad = write("ok: h:1\nbroken:h:1\n");
    for (const name of ["TokenFile", "ReadOnlyTokenFile", "websockify.token_plugins.TokenFile"]) {
      await assert.rejects(loadTokenPlugin(name, bad), {
        name: "ConfigError",
        message: `Cannot start plugin '${name}': Syntax error in ${bad} on line 2`,
      });
    }
    const missing = path.join(tmp, "missing.cfg");
    await assert.rejects(loadTokenPlugin("TokenFile", missing), {
      message:
        `Cannot start plugin 'TokenFile': Cannot read "${missing}": no such file or directory`,
    });
    await assert.rejects(loadTokenPlugin("TokenFile"), /TokenFile needs --token-source=FILE/);
  });
});

describe("TokenFileName", () => {
  let dir: string;
  before(() => {
    dir = path.join(tmp, "names");
    write(" 10.0.0.7:5907\n", "names/vm7");
    write("[::1]:5908", "names/vm8");
    write("nonsense", "names/broken");
    write("10.9.9.9:1", "outside-target");
    fs.mkdirSync(path.join(dir, "subdir"));
    fs.symlinkSync(path.join(tmp, "outside-target"), path.join(dir, "escape"));
    fs.symlinkSync(path.join(dir, "vm7"), path.join(dir, "alias"));
  });

  test("tokenFileName() reads the target from the file named by the token", async () => {
    const plugin = await loadTokenPlugin("TokenFileName", dir);
    assert.deepEqual(await plugin.lookup("vm7"), tcp("10.0.0.7", 5907));
    assert.deepEqual(await plugin.lookup("vm8"), tcp("::1", 5908));
    assert.deepEqual(await plugin.lookup("alias"), tcp("10.0.0.7", 5907));
    // Only the last path segment counts, as upstream.
    assert.deepEqual(await plugin.lookup("../names/vm7"), tcp("10.0.0.7", 5907));
    assert.deepEqual(await plugin.lookup("/etc/vm7"), tcp("10.0.0.7", 5907));
  });

  test("tokenFileName() never reads outside its directory", async () => {
    const plugin = await tokenFileName(dir);
    for (const token of ["nope", "..", ".", "a/", "escape", "subdir", "../outside-target", "x\0"]) {
      assert.equal(await plugin.lookup(token), undefined, token);
    }
  });

  test("tokenFileName() fails a lookup on a bad file and start-up without a directory", async () => {
    const plugin = await tokenFileName(dir);
    await assert.rejects(
      async () => await plugin.lookup("broken"),
      /Cannot use ".*broken": Cannot parse target/,
    );
    await assert.rejects(loadTokenPlugin("TokenFileName", path.join(dir, "vm7")), {
      message: "Cannot start plugin 'TokenFileName': TokenFileName plugin requires a directory",
    });
  });
});

describe("TokenFile through the proxy", () => {
  let file: string;
  let broken: string;
  let proxy: Websockify;
  let brokenProxy: Websockify;
  before(async () => {
    file = write(`t1: ${echoAddr}\na b: ${echoAddr}\n`);
    broken = write(`t1: ${echoAddr}\n`);
    proxy = await websockify({
      listen: { hostname: "127.0.0.1", port: 0 },
      tokenPlugin: await loadTokenPlugin("TokenFile", file),
    });
    brokenProxy = await websockify({
      listen: { hostname: "127.0.0.1", port: 0 },
      tokenPlugin: await tokenFile(broken, { checkIntervalMs: 0 }),
    });
  });
  after(() => Promise.all([proxy.close(), brokenProxy.close()]));

  test("a known token reaches its target, on any path", async () => {
    await echoThrough(proxy.addr.port, "/?token=t1");
    await echoThrough(proxy.addr.port, "/websockify?token=t1");
  });

  test("refusals: no token 403, unknown 404, failing lookup 503", async () => {
    const port = proxy.addr.port;
    assert.equal(await upgradeStatus(port, "/"), 403);
    assert.equal(await upgradeStatus(port, "/?token="), 403);
    assert.equal(await upgradeStatus(port, "/?token=nope"), 404);
    fs.writeFileSync(broken, "t1 no colon\n");
    assert.equal(await upgradeStatus(brokenProxy.addr.port, "/?token=t1"), 503);
    fs.writeFileSync(broken, `t1: ${echoAddr}\n`);
    assert.equal(await upgradeStatus(brokenProxy.addr.port, "/?token=t1"), 101);
  });

  test("tokens are URL-decoded: %20 and + are spaces", async () => {
    assert.equal(await upgradeStatus(proxy.addr.port, "/?token=a%20b"), 101);
    assert.equal(await upgradeStatus(proxy.addr.port, "/?token=a+b"), 101);
    assert.equal(await upgradeStatus(proxy.addr.port, "/?token=a%2520b"), 404);
  });

  test("a token appended just before connecting is found at once, 50 times in a row", async () => {
    const port = proxy.addr.port;
    for (let i = 0; i < 50; i++) {
      fs.appendFileSync(file, `later${i}: ${echoAddr}\n`);
      assert.equal(await upgradeStatus(port, `/?token=later${i}`), 101, `token ${i}`);
    }
    await echoThrough(port, "/?token=later49");
  });

  test("a token file added to a directory just before connecting is found at once", async () => {
    const dir = path.join(tmp, "live.d");
    write(`first: ${echoAddr}\n`, "live.d/0.cfg");
    const dirProxy = await websockify({
      listen: { hostname: "127.0.0.1", port: 0 },
      tokenPlugin: await loadTokenPlugin("TokenFile", dir),
    });
    try {
      for (let i = 1; i <= 50; i++) {
        // Alternately a new file and a line added to the first one.
        if (i % 2) write(`new${i}: ${echoAddr}\n`, `live.d/${i}.cfg`);
        else fs.appendFileSync(path.join(dir, "0.cfg"), `new${i}: ${echoAddr}\n`);
        assert.equal(await upgradeStatus(dirProxy.addr.port, `/?token=new${i}`), 101, `token ${i}`);
      }
    } finally {
      await dirProxy.close();
    }
  });
});

describe("--host-token", () => {
  let proxy: Websockify;
  before(async () => {
    const file = write(`vm1.example: ${echoAddr}\n::1: ${echoAddr}\n`);
    proxy = await websockify({
      listen: { hostname: "127.0.0.1", port: 0 },
      tokenPlugin: await loadTokenPlugin("TokenFile", file),
      hostToken: true,
    });
  });
  after(() => proxy.close());

  test("the Host name, without its port, is the token", async () => {
    const port = proxy.addr.port;
    const headers = { Host: "vm1.example:6080", "Sec-WebSocket-Protocol": "binary" };
    const client = await within(5000, rawConnect(port, headers), "handshake");
    try {
      assert.equal(client.status, 101);
      const data = pattern(100);
      client.send(encodeFrame(2, data));
      const frame = await within(5000, client.next(), "echo");
      assert.deepEqual(new Uint8Array(frame!.payload), data);
    } finally {
      client.sock.destroy();
    }
    assert.equal(await upgradeStatus(port, "/", { Host: "[::1]:6080" }), 101);
    assert.equal(await upgradeStatus(port, "/?token=vm1.example", { Host: "other:6080" }), 404);
  });
});

describe("TokenFile from the command line", () => {
  test("--token-plugin=TokenFile --token-source=FILE and --target-config=FILE proxy by token", async () => {
    const file = write(`cli: ${echoAddr}\n`);
    for (
      const args of [["--token-plugin=TokenFile", `--token-source=${file}`], [
        `--target-config=${file}`,
      ]]
    ) {
      const proc = spawnCli([...args, "127.0.0.1:0"]);
      try {
        const port = await proc.port();
        await waitFor(() => /to targets generated by TokenFile/.test(proc.stderr), 5000, "banner");
        await echoThrough(port, "/?token=cli");
        assert.equal(await upgradeStatus(port, "/?token=nope"), 404);
      } finally {
        await proc.kill("SIGKILL");
      }
    }
  });

  test("a syntax error at start-up is one line and exit 1", async () => {
    const bad = write(`ok: ${echoAddr}\nbad:${echoAddr}\n`);
    const { code, stderr } = await runCli([
      "--token-plugin=TokenFile",
      `--token-source=${bad}`,
      "127.0.0.1:0",
    ]);
    assert.equal(code, 1);
    assert.equal(
      stderr,
      `websockify: error: Cannot start plugin 'TokenFile': Syntax error in ${bad} on line 2\n`,
    );
  });
});
