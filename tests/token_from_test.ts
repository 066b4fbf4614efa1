/**
 * `--token-from`: each source (query, path, cookie, header, host and the
 * `--host-token` alias) over real sockets, their order, the start-up checks,
 * and the token as session log lines carry it: shortened, never whole.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { createLogger, loadTokenPlugin, type Websockify, websockify } from "../mod.ts";
import { tokenLabel } from "../lib/log.ts";
import { parseTokenFrom, type TokenSource } from "../lib/plugins/token.ts";
import { upgradeStatus } from "./_frames.ts";
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

let tmp: string;
let echo: TcpServer;
let tokens: string;
const SECRET = "secret-desktop-token-0123456789";

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-tokfrom-"));
  echo = await startEchoServer();
  const to = `127.0.0.1:${echo.port}`;
  tokens = path.join(tmp, "tokens.cfg");
  fs.writeFileSync(
    tokens,
    ["qtok", "ptok", "vm 1", "ctok", "htok", "vm1.example", SECRET].map((t) => `${t}: ${to}\n`)
      .join(""),
  );
});
after(async () => {
  await echo.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The status of an upgrade to `urlPath` with `headers`. */
const status = (port: number, urlPath: string, headers: Record<string, string> = {}) =>
  within(5000, upgradeStatus(port, urlPath, headers), "handshake");

/** Runs `check` against a proxy over the token file with `tokenFrom`. */
async function withProxy(
  tokenFrom: string | undefined,
  check: (port: number) => Promise<void>,
  extra: { hostToken?: boolean; logger?: ReturnType<typeof createLogger> } = {},
): Promise<void> {
  const proxy: Websockify = await websockify({
    listen: { hostname: "127.0.0.1", port: 0 },
    tokenPlugin: await loadTokenPlugin("TokenFile", tokens),
    tokenFrom,
    ...extra,
  });
  try {
    await check(proxy.addr.port);
  } finally {
    await proxy.close();
  }
}

describe("parseTokenFrom()", () => {
  test("sources in order", () => {
    const good: [string, TokenSource[]][] = [
      ["query", [{ kind: "query" }]],
      ["path, query", [{ kind: "path" }, { kind: "query" }]],
      ["cookie:vnc,header:X-Token,host", [
        { kind: "cookie", name: "vnc" },
        { kind: "header", name: "X-Token" },
        { kind: "host" },
      ]],
    ];
    for (const [text, want] of good) assert.deepEqual(parseTokenFrom(text), want, text);
  });

  test("unknown sources and missing names are usage errors", () => {
    for (const bad of ["", "qurey", "path,", "cookie:", "header:", "cookie", "header:a b", ":x"]) {
      assert.throws(() => parseTokenFrom(bad), { name: "UsageError" }, bad);
    }
  });
});

describe("--token-from sources over real sockets", () => {
  test("query is the default; a path is then no token", async () => {
    await withProxy(undefined, async (port) => {
      assert.equal(await status(port, "/websockify?token=qtok"), 101);
      assert.equal(await status(port, "/websockify/ptok"), 403);
    });
  });

  test("path: the last of two or more segments, percent-decoded; one segment is none", async () => {
    await withProxy("path", async (port) => {
      assert.equal(await status(port, "/websockify/ptok"), 101);
      assert.equal(await status(port, "/vnc/vm%201"), 101);
      assert.equal(await status(port, "/a/b/ptok"), 101);
      assert.equal(await status(port, "/websockify/nope"), 404);
      assert.equal(await status(port, "/ptok"), 403);
      assert.equal(await status(port, "/websockify/%zz"), 403);
      assert.equal(await status(port, "/websockify?token=qtok"), 403);
    });
  });

  test("a one-segment path falls through to the next source", async () => {
    await withProxy("path,query", async (port) => {
      assert.equal(await status(port, "/websockify?token=qtok"), 101);
      // The path comes first: its token wins over the query's.
      assert.equal(await status(port, "/websockify/ptok?token=nope"), 101);
      assert.equal(await status(port, "/websockify/nope?token=qtok"), 404);
    });
  });

  test("cookie:NAME, quoted or not, among other cookies", async () => {
    await withProxy("cookie:vnc", async (port) => {
      assert.equal(await status(port, "/", { Cookie: "a=1; vnc=ctok; b=2" }), 101);
      assert.equal(await status(port, "/", { Cookie: 'vnc="ctok"' }), 101);
      assert.equal(await status(port, "/", { Cookie: "xvnc=ctok; vncx=ctok" }), 403);
      assert.equal(await status(port, "/?token=ctok"), 403);
      assert.equal(await status(port, "/", { Cookie: "vnc=nope" }), 404);
    });
  });

  test("header:NAME, in any letter case", async () => {
    await withProxy("header:X-Vnc-Token", async (port) => {
      assert.equal(await status(port, "/", { "x-vnc-token": "htok" }), 101);
      assert.equal(await status(port, "/?token=htok"), 403);
    });
  });

  test("the order decides between sources that both yield a token", async () => {
    const headers = { Cookie: "vnc=ctok" };
    await withProxy("cookie:vnc,query", async (port) => {
      assert.equal(await status(port, "/?token=nope", headers), 101);
      assert.equal(await status(port, "/?token=qtok"), 101);
    });
    await withProxy("query,cookie:vnc", async (port) => {
      assert.equal(await status(port, "/?token=nope", headers), 404);
      assert.equal(await status(port, "/", headers), 101);
    });
  });

  test("bytes flow through a session chosen by a path token", async () => {
    await withProxy("path", async (port) => {
      const ws = await within(5000, openClient(port, ["binary"], "127.0.0.1", "/vnc/ptok"), "open");
      const data = pattern(3000);
      const got = receive(ws, data.length);
      ws.send(data);
      assert.deepEqual(await within(5000, got, "echo"), data);
      ws.close();
      await within(5000, closed(ws), "close");
    });
  });
});

describe("--token-from on the command line", () => {
  test("host and its alias --host-token take the Host name", async () => {
    for (const option of ["--token-from=host", "--host-token"]) {
      const proc = spawnCli([
        "--token-plugin=TokenFile",
        `--token-source=${tokens}`,
        option,
        "127.0.0.1:0",
      ]);
      try {
        const port = await proc.port();
        assert.equal(await status(port, "/", { Host: "vm1.example:6080" }), 101, option);
        assert.equal(await status(port, "/?token=qtok", { Host: "other:6080" }), 404, option);
      } finally {
        await proc.kill("SIGKILL");
      }
    }
  });

  test("a bad list is a one-line usage error at start-up, exit 2", async () => {
    const plugin = ["--token-plugin=TokenFile", `--token-source=${tokens}`];
    const cases: [string[], RegExp][] = [
      [[...plugin, "--token-from=query,bogus"], /unknown source 'bogus'/],
      [[...plugin, "--token-from=cookie:"], /'cookie:' needs a valid cookie NAME/],
      [[...plugin, "--token-from=host", "--host-token"], /--token-from or --host-token/],
      [["--token-from=path", "127.0.0.1:5900"], /--token-plugin to use --token-from/],
    ];
    for (const [args, message] of cases) {
      const { code, stderr } = await runCli([...args, "127.0.0.1:0"]);
      assert.equal(code, 2, stderr);
      const errors = stderr.split("\n").filter((line) => line.includes("error"));
      assert.equal(errors.length, 1, stderr);
      assert.match(errors[0]!, /^websockify: error: /);
      assert.match(errors[0]!, message);
    }
  });
});

describe("the token in session log lines", () => {
  test("open and close JSON lines carry the shortened token, never the whole", async () => {
    const lines: string[] = [];
    const logger = createLogger({ write: (line) => lines.push(line), format: "json" });
    await withProxy("path", async (port) => {
      const ws = await within(
        5000,
        openClient(port, ["binary"], "127.0.0.1", `/vnc/${SECRET}`),
        "open",
      );
      const got = receive(ws, 3);
      ws.send(new Uint8Array([1, 2, 3]));
      await within(5000, got, "echo");
      ws.close();
      await within(5000, closed(ws), "close");
      await waitFor(() => lines.some((l) => l.includes('"event":"close"')), 5000, "close line");
    }, { logger });
    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const event of ["open", "close"]) {
      const entry = entries.find((e) => e.event === event) ?? assert.fail(event);
      assert.equal(entry.token, tokenLabel(SECRET), event);
    }
    assert.ok(!lines.some((line) => line.includes(SECRET)), "a token never whole");
    assert.ok(!lines.some((line) => line.includes(SECRET.slice(0, 10))), "nor most of it");
  });

  test("a fixed target's session lines have no token field", async () => {
    const lines: string[] = [];
    const logger = createLogger({ write: (line) => lines.push(line), format: "json" });
    const proxy = await websockify({
      listen: { hostname: "127.0.0.1", port: 0 },
      target: `127.0.0.1:${echo.port}`,
      logger,
    });
    try {
      const ws = await within(5000, openClient(proxy.addr.port, ["binary"]), "open");
      ws.close();
      await within(5000, closed(ws), "close");
      await waitFor(() => lines.some((l) => l.includes('"event":"close"')), 5000, "close line");
    } finally {
      await proxy.close();
    }
    const sessions = lines.map((l) => JSON.parse(l)).filter((e) =>
      e.event === "open" || e.event === "close"
    );
    assert.equal(sessions.length, 2);
    for (const entry of sessions) assert.ok(!("token" in entry), JSON.stringify(entry));
  });
});
