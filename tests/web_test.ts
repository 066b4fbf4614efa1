/**
 * The `--web` server: files, index pages, listings, redirects, caching,
 * methods, and that no request ever reads outside the web root.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import type { Websockify } from "../mod.ts";
import { type Certs, makeCerts } from "./_certs.ts";
import {
  closed,
  httpGet,
  openClient,
  receive,
  ROOT,
  runCli,
  spawnCli,
  startEchoServer,
  startProxy,
  type TcpServer,
  within,
} from "./_harness.ts";

const SECRET = "TOP SECRET do not serve";
let tmp: string;
let root: string;
let echo: TcpServer;

function write(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-web-"));
  root = path.join(tmp, "www");
  write(path.join(tmp, "secret.txt"), SECRET);
  write(path.join(tmp, "outside", "secret.txt"), SECRET);
  write(path.join(root, "plain.txt"), "hello web\n");
  write(path.join(root, "mod", "ui.js"), "export const x = 1;\n");
  write(path.join(root, "app", "index.html"), "<h1>app</h1>\n");
  write(path.join(root, "old", "index.htm"), "<h1>old</h1>\n");
  write(path.join(root, "files", "a<b>&'.txt"), "odd name\n");
  write(path.join(root, "files", "data.bin"), "\x00\x01");
  fs.mkdirSync(path.join(root, "files", "sub"));
  fs.symlinkSync(path.join(tmp, "outside"), path.join(root, "escape"));
  fs.symlinkSync(path.join(tmp, "secret.txt"), path.join(root, "escape.txt"));
  fs.symlinkSync(path.join(root, "plain.txt"), path.join(root, "link.txt"));
  write(path.join(root, ".hidden.txt"), SECRET);
  write(path.join(root, ".git", "config"), SECRET);
  write(path.join(root, "files", ".env"), SECRET);
  fs.symlinkSync(path.join(root, ".hidden.txt"), path.join(root, "shown.txt"));
  echo = await startEchoServer();
});
after(async () => {
  await echo.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("--web", () => {
  let proxy: Websockify;
  before(async () => {
    proxy = await startProxy(`127.0.0.1:${echo.port}`, { web: root });
  });
  after(() => proxy.close());
  const get = (p: string, o?: Parameters<typeof httpGet>[2]) => httpGet(proxy.addr.port, p, o);

  test("a file is served with type, length and last-modified", async () => {
    const res = await get("/plain.txt");
    assert.equal(res.status, 200);
    assert.equal(res.body, "hello web\n");
    assert.equal(res.headers["content-type"], "text/plain; charset=utf-8");
    assert.equal(res.headers["content-length"], "10");
    assert.ok(res.headers["last-modified"]);
  });

  test("ES modules are text/javascript", async () => {
    const res = await get("/mod/ui.js");
    assert.equal(res.headers["content-type"], "text/javascript; charset=utf-8");
  });

  test("HEAD gives the headers without a body", async () => {
    const res = await get("/plain.txt", { method: "HEAD" });
    assert.equal(res.status, 200);
    assert.equal(res.headers["content-length"], "10");
    assert.equal(res.body, "");
  });

  test("If-Modified-Since answers 304", async () => {
    const first = await get("/plain.txt");
    const res = await get("/plain.txt", {
      headers: { "If-Modified-Since": first.headers["last-modified"]! },
    });
    assert.equal(res.status, 304);
  });

  test("a directory without a slash redirects 301, keeping the query", async () => {
    const res = await get("/app?x=1");
    assert.equal(res.status, 301);
    assert.equal(res.headers["location"], "/app/?x=1");
  });

  // "//files/" in a Location is protocol-relative: a redirect to host "files".
  for (const p of ["//files", "///files?x=1", "/\\files", "/\\/files", "//%2ffiles"]) {
    test(`${p} never redirects to another host`, async () => {
      const res = await get(p);
      const location = res.headers["location"] ?? "";
      assert.ok(!/^[/\\]{2}/.test(location), `Location ${location}`);
      if (res.status === 301) assert.match(location, /^\/[^/\\]/);
    });
  }

  test("//files redirects to its own /files/", async () => {
    const res = await get("//files?x=1");
    assert.equal(res.status, 301);
    assert.equal(res.headers["location"], "/files/?x=1");
  });

  test("index.html, then index.htm, serve a directory", async () => {
    assert.equal((await get("/app/")).body, "<h1>app</h1>\n");
    assert.equal((await get("/old/")).body, "<h1>old</h1>\n");
  });

  test("a directory without an index is listed with escaped names", async () => {
    const res = await get("/files/");
    assert.equal(res.status, 200);
    assert.match(res.headers["content-type"]!, /^text\/html/);
    assert.match(res.body, /Directory listing for \/files\//);
    assert.match(res.body, /a&lt;b&gt;&amp;&#x27;\.txt/);
    assert.match(res.body, /href="sub\/">sub\/</);
    assert.doesNotMatch(res.body, /a<b>/);
  });

  test("dotfiles and dot-directories are not listed", async () => {
    for (const dir of ["/", "/files/"]) {
      const res = await get(dir);
      assert.equal(res.status, 200);
      assert.match(res.body, /plain\.txt|data\.bin/);
      assert.doesNotMatch(res.body, /\.hidden|\.git|\.env|shown\.txt/);
    }
  });

  test("a symlink inside the root is followed", async () => {
    assert.equal((await get("/link.txt")).body, "hello web\n");
  });

  test("a missing file is 404", async () => {
    assert.equal((await get("/nope.txt")).status, 404);
  });

  const escapes = [
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/..%5csecret.txt",
    "/%2e%2e%5csecret.txt",
    "/files/../../secret.txt",
    "/files/%2e%2e/%2e%2e/outside/secret.txt",
    "/escape/secret.txt",
    "/escape/",
    "/escape.txt",
    "/plain.txt%00.html",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/%",
  ];
  for (const p of escapes) {
    test(`${p} never reads outside the root`, async () => {
      const res = await get(p);
      assert.ok(res.status >= 400, `status ${res.status}`);
      assert.ok(!res.body.includes(SECRET));
      assert.ok(!res.body.includes("root:"));
    });
  }

  const dotted = [
    "/.hidden.txt",
    "/%2ehidden.txt",
    "/.git/config",
    "/.git/",
    "/.git",
    "/files/.env",
    "/shown.txt",
  ];
  for (const p of dotted) {
    test(`${p}: dotfiles are not served, not even through a link`, async () => {
      const res = await get(p);
      assert.equal(res.status, 404);
      assert.ok(!res.body.includes(SECRET));
    });
  }

  test("write methods are 405, unknown ones 501", async () => {
    for (const method of ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]) {
      assert.equal((await get("/plain.txt", { method })).status, 405, method);
    }
    assert.equal((await get("/plain.txt", { method: "TRACE" })).status, 501);
  });

  test("a WebSocket upgrade on any path still reaches the target", async () => {
    const ws = await openClient(proxy.addr.port, ["binary"]);
    const got = receive(ws, 2);
    ws.send(new Uint8Array([4, 2]));
    assert.deepEqual(await within(5000, got), new Uint8Array([4, 2]));
    ws.close();
    await closed(ws);
  });
});

describe("--web options", () => {
  test("--file-only answers 404 for a directory without an index", async () => {
    const proxy = await startProxy(`127.0.0.1:${echo.port}`, { web: root, fileOnly: true });
    try {
      assert.equal((await httpGet(proxy.addr.port, "/files/")).status, 404);
      assert.equal((await httpGet(proxy.addr.port, "/app/")).status, 200);
    } finally {
      await proxy.close();
    }
  });

  test("webAuth applies the authenticate hook to web requests", async () => {
    const authenticate = (req: Request) =>
      req.headers.get("x-pass") === "yes" ? undefined : new Response("no", { status: 403 });
    const proxy = await startProxy(`127.0.0.1:${echo.port}`, {
      web: root,
      authenticate,
      webAuth: true,
    });
    try {
      assert.equal((await httpGet(proxy.addr.port, "/plain.txt")).status, 403);
      const ok = await httpGet(proxy.addr.port, "/plain.txt", { headers: { "X-Pass": "yes" } });
      assert.equal(ok.status, 200);
    } finally {
      await proxy.close();
    }
  });

  test("a --web directory that does not exist is one line and exit 1", async () => {
    const { code, stderr } = await runCli([`--web=${tmp}/nope`, "0", "127.0.0.1:1"]);
    assert.equal(code, 1);
    assert.match(stderr, /^websockify: error: Cannot serve --web ".*nope": not a directory$/m);
  });
});

describe("--web never serves the proxy's own key and token files", () => {
  let certs: Certs;
  let keys: string;
  let pem: string;
  before(() => {
    certs = makeCerts();
    keys = path.join(tmp, "keys");
    pem = path.join(keys, "self.pem");
    write(path.join(keys, "ok.txt"), "public\n");
    write(pem, fs.readFileSync(certs.combined, "utf8"));
    write(path.join(keys, "tokens.cfg"), `vm1: 127.0.0.1:${echo.port}\n`);
    write(path.join(keys, "tokdir", "a.cfg"), `vm2: 127.0.0.1:${echo.port}\n`);
    fs.symlinkSync(pem, path.join(keys, "link.pem"));
    fs.linkSync(pem, path.join(keys, "hard.pem"));
    fs.symlinkSync(path.join(keys, "tokens.cfg"), path.join(keys, "tokens.txt"));
  });
  after(() => certs.remove());

  const hidden = ["/self.pem", "/link.pem", "/hard.pem", "/tokens.cfg", "/tokens.txt"];

  async function check(port: number, more: string[] = []): Promise<void> {
    assert.equal((await httpGet(port, "/ok.txt")).body, "public\n");
    for (const p of [...hidden, ...more]) {
      const res = await httpGet(port, p);
      assert.equal(res.status, 404, p);
      assert.doesNotMatch(res.body, /PRIVATE KEY|vm\d:/, p);
    }
    const list = await httpGet(port, "/");
    assert.match(list.body, /ok\.txt/);
    assert.doesNotMatch(list.body, /\.pem|tokens/);
  }

  test("the tls files and webExclude, through links and hard links", async () => {
    const proxy = await startProxy(`127.0.0.1:${echo.port}`, {
      web: keys,
      tls: { cert: pem },
      webExclude: [path.join(keys, "tokens.cfg"), path.join(keys, "tokdir")],
    });
    try {
      await check(proxy.addr.port, ["/tokdir/a.cfg", "/tokdir/"]);
    } finally {
      await proxy.close();
    }
  });

  test("the CLI excludes --cert and --token-source however they are spelled", async () => {
    const rel = (f: string) => `./${path.relative(ROOT, f)}`;
    const proc = spawnCli([
      `--web=${keys}`,
      `--cert=${rel(keys)}/./link.pem`,
      "--token-plugin=TokenFile",
      `--token-source=${rel(path.join(keys, "tokens.cfg"))}`,
      "127.0.0.1:0",
    ]);
    try {
      await check(await proc.port());
    } finally {
      await proc.kill();
    }
  });
});
