/**
 * Auth plugins before the 101: BasicHTTPAuth, ExpectOrigin,
 * ClientCertCNAuth, custom modules, and --web-auth.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { pathToFileURL } from "node:url";
import {
  loadAuthPlugin,
  loadTokenPlugin,
  type Websockify,
  type WebsockifyOptions,
} from "../mod.ts";
import { type Certs, makeCerts } from "./_certs.ts";
import { rawConnect } from "./_frames.ts";
import {
  closed,
  httpGet,
  rawHttp,
  runCli,
  startEchoServer,
  startProxy,
  type TcpServer,
  within,
} from "./_harness.ts";

let echo: TcpServer;
let tmp: string;
before(async () => {
  echo = await startEchoServer();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsfy-auth-"));
  fs.writeFileSync(path.join(tmp, "index.html"), "<p>hi</p>\n");
});
after(async () => {
  await echo.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function withProxy(
  options: Partial<WebsockifyOptions>,
  run: (port: number) => Promise<void>,
): Promise<void> {
  const proxy: Websockify = await startProxy(`127.0.0.1:${echo.port}`, options);
  try {
    await run(proxy.addr.port);
  } finally {
    await proxy.close();
  }
}

/** The handshake's status line and headers. */
async function upgrade(port: number, headers: Record<string, string> = {}) {
  const raw = await rawConnect(port, headers);
  raw.sock.destroy();
  return { status: raw.status, head: raw.head };
}

const basic = (text: string) => `Basic ${Buffer.from(text, "latin1").toString("base64")}`;

describe("BasicHTTPAuth", () => {
  const cases: [string, Record<string, string>, number][] = [
    ["no header", {}, 401],
    ["wrong password", { Authorization: basic("admin:nope") }, 401],
    ["wrong user", { Authorization: basic("root:s3:cret") }, 401],
    ["not Basic", { Authorization: "Bearer abc" }, 403],
    ["malformed base64", { Authorization: "Basic abc!" }, 403],
    ["no colon", { Authorization: basic("admin") }, 403],
    ["the right credentials", { Authorization: basic("admin:s3:cret") }, 101],
  ];
  for (const [what, headers, status] of cases) {
    test(`BasicHTTPAuth answers ${status} for ${what}`, async () => {
      const authPlugin = await loadAuthPlugin("BasicHTTPAuth", "admin:s3:cret");
      await withProxy({ authPlugin }, async (port) => {
        const res = await upgrade(port, headers);
        assert.equal(res.status, status, res.head);
        if (status === 401) {
          assert.match(res.head, /^HTTP\/1\.1 401 Unauthorized/);
          assert.match(res.head, /^www-authenticate: Basic realm="Websockify"$/im);
        }
        if (status !== 101) assert.match(res.head, /^content-length: \d+$/im);
      });
    });
  }
});

describe("ExpectOrigin", () => {
  const cases: [string | undefined, number][] = [
    [undefined, 403],
    ["https://evil.example", 403],
    ["https://b.example", 101],
  ];
  for (const [origin, status] of cases) {
    test(`ExpectOrigin answers ${status} for origin ${origin}`, async () => {
      const authPlugin = await loadAuthPlugin(
        "ExpectOrigin",
        "https://a.example https://b.example",
      );
      await withProxy({ authPlugin }, async (port) => {
        const res = await upgrade(port, origin ? { Origin: origin } : {});
        assert.equal(res.status, status, res.head);
        if (status === 403) assert.match(res.head, /^HTTP\/1\.1 403 Invalid Origin/);
      });
    });
  }
});

describe("ClientCertCNAuth", () => {
  let certs: Certs;
  before(() => (certs = makeCerts()));
  after(() => certs.remove());

  const connect = (port: number) => {
    const ws = new WebSocket(`wss://localhost:${port}/`, ["binary"], {
      ca: fs.readFileSync(certs.ca),
      cert: fs.readFileSync(certs.clientCert),
      key: fs.readFileSync(certs.clientKey),
    });
    return new Promise<number>((resolve) => {
      ws.once("open", () => {
        ws.close();
        resolve(101);
      });
      ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.once("error", () => resolve(0));
    });
  };
  const tls = () => ({ cert: certs.combined, verifyClient: true, ca: certs.ca });

  test("ClientCertCNAuth accepts a listed CN", async () => {
    const authPlugin = await loadAuthPlugin("ClientCertCNAuth", "bob alice");
    await withProxy({ authPlugin, tls: tls() }, async (port) => {
      assert.equal(await within(5000, connect(port)), 101);
    });
  });

  test("ClientCertCNAuth refuses an unlisted CN with 403", async () => {
    const authPlugin = await loadAuthPlugin("ClientCertCNAuth", "bob");
    await withProxy({ authPlugin, tls: tls() }, async (port) => {
      assert.equal(await within(5000, connect(port)), 403);
    });
  });
});

describe("custom auth modules", () => {
  test("a module's authPlugin sees sanitised headers and can refuse", async () => {
    const file = path.join(tmp, "plugin.mjs");
    fs.writeFileSync(
      file,
      `export function authPlugin(source) {
  return {
    authenticate({ headers, target }) {
      if (headers.get("ssl_client_s_dn_cn") !== null) throw new Error("spoofed header passed");
      if (headers.get("x-key") !== source) {
        const e = new Error("Teapot"); e.status = 418; throw e;
      }
      if (target.port === 0) throw new Error("no target");
    },
  };
}
`,
    );
    const authPlugin = await loadAuthPlugin(file, "k1");
    await withProxy({ authPlugin }, async (port) => {
      assert.equal(
        (await upgrade(port, { "X-Key": "k1", SSL_CLIENT_S_DN_CN: "admin" })).status,
        101,
      );
      // A plain Error (not AuthenticationError) is a plugin failure: 500.
      assert.equal((await upgrade(port, { "X-Key": "k2" })).status, 500);
    });
  });

  test("a TypeScript module with a named export loads on every runtime", async () => {
    const file = path.join(tmp, "named.ts");
    fs.writeFileSync(
      file,
      `import { AuthenticationError } from ${JSON.stringify(path.resolve("mod.ts"))};
export const onlyGet = (_source: string | undefined) => ({
  authenticate({ headers }: { headers: Headers }) {
    if (!headers.get("x-ok")) throw new AuthenticationError("Nope", { status: 401 });
  },
});
`,
    );
    const authPlugin = await loadAuthPlugin(`${file}#onlyGet`);
    await withProxy({ authPlugin }, async (port) => {
      const res = await upgrade(port);
      assert.equal(res.status, 401);
      assert.match(res.head, /^HTTP\/1\.1 401 Nope/);
      assert.equal((await upgrade(port, { "X-Ok": "1" })).status, 101);
    });
  });

  test("unknown plugins and bad modules are clear errors", async () => {
    await assert.rejects(loadAuthPlugin("NoSuchAuth"), /Unknown auth plugin 'NoSuchAuth'/);
    await assert.rejects(loadAuthPlugin(`${tmp}/missing.js`), /Cannot load auth plugin/);
    await assert.rejects(loadAuthPlugin("BasicHTTPAuth"), /needs --auth-source=user:password/);
  });
});

describe("--web-auth", () => {
  test("the auth plugin guards --web only with webAuth", async () => {
    const authPlugin = await loadAuthPlugin("BasicHTTPAuth", "u:p");
    await withProxy({ authPlugin, web: tmp }, async (port) => {
      assert.equal((await httpGet(port, "/")).status, 200);
    });
    await withProxy({ authPlugin, web: tmp, webAuth: true }, async (port) => {
      assert.equal((await httpGet(port, "/")).status, 401);
      const ok = await httpGet(port, "/", { headers: { Authorization: basic("u:p") } });
      assert.equal(ok.status, 200);
      assert.equal(ok.body, "<p>hi</p>\n");
    });
  });

  test("--web-auth without --auth-plugin is a usage error", async () => {
    const { code, stderr } = await runCli(["--web-auth", `--web=${tmp}`, "0", "127.0.0.1:1"]);
    assert.equal(code, 2);
    assert.match(
      stderr,
      /websockify: error: You must use --auth-plugin and --web to use --web-auth/,
    );
  });

  test("an unknown --auth-plugin is one line and exit 1", async () => {
    const { code, stderr } = await runCli(["--auth-plugin=Nope", "0", "127.0.0.1:1"]);
    assert.equal(code, 1);
    assert.match(stderr, /^websockify: error: Unknown auth plugin 'Nope'/m);
  });

  test("names of Object's members are unknown plugins: one line and exit 1", async () => {
    for (
      const name of ["toString", "constructor", "__proto__", "websockify.auth_plugins.valueOf"]
    ) {
      const { code, stderr } = await runCli([`--auth-plugin=${name}`, "0", "127.0.0.1:1"]);
      assert.equal(code, 1, stderr);
      assert.equal(stderr.trimEnd().split("\n").length, 1, stderr);
      assert.match(
        stderr,
        new RegExp(`^websockify: error: Unknown auth plugin '${name}' \\(built in: `),
      );
    }
  });
});

describe("authentication before the token lookup", () => {
  /** A raw upgrade request for `urlPath`, with `extra` header lines. */
  const request = (urlPath: string, extra = "") =>
    `GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;
  /** The whole refusal: status line, headers but Date, body. */
  const refusal = async (port: number, urlPath: string, extra = "") => {
    const res = await within(5000, rawHttp(port, request(urlPath, extra)), "refusal");
    return `${res.head.replace(/^date: .*\r\n/im, "")}\r\n\r\n${res.body}`;
  };

  test("with BasicHTTPAuth, known and unknown tokens get the same refusal", async () => {
    const tokens = path.join(tmp, "tokens.cfg");
    fs.writeFileSync(tokens, `vm1: 127.0.0.1:${echo.port}\n`);
    const authPlugin = await loadAuthPlugin("BasicHTTPAuth", "u:p");
    const tokenPlugin = await loadTokenPlugin("TokenFile", tokens);
    const proxy = await startProxy(undefined, { authPlugin, tokenPlugin });
    try {
      const port = proxy.addr.port;
      for (const extra of ["", `Authorization: ${basic("u:wrong")}\r\n`]) {
        const known = await refusal(port, "/?token=vm1", extra);
        assert.match(known, /^HTTP\/1\.1 401 /);
        assert.equal(await refusal(port, "/?token=nope", extra), known);
        assert.equal(await refusal(port, "/", extra), known, "no token at all");
      }
      const auth = `Authorization: ${basic("u:p")}\r\n`;
      assert.match(await refusal(port, "/?token=nope", auth), /^HTTP\/1\.1 404 /);
    } finally {
      await proxy.close();
    }
  });

  test("the token plugin is never asked for unauthenticated requests", async () => {
    const file = path.join(tmp, "counting.mjs");
    fs.writeFileSync(
      file,
      `export const calls = [];
export function tokenPlugin(source) {
  return {
    lookup(token) {
      calls.push(token);
      return token === "vm1" ? { kind: "tcp", hostname: "127.0.0.1", port: Number(source) } : undefined;
    },
  };
}
`,
    );
    const { calls } = await import(pathToFileURL(file).href) as { calls: string[] };
    const tokenPlugin = await loadTokenPlugin(file, String(echo.port));
    for (const [name, source] of [["BasicHTTPAuth", "u:p"], ["ExpectOrigin", "https://ok"]]) {
      const authPlugin = await loadAuthPlugin(name!, source);
      const proxy = await startProxy(undefined, { authPlugin, tokenPlugin });
      try {
        const port = proxy.addr.port;
        for (const token of ["vm1", "nope", "vm1"]) {
          assert.match(await refusal(port, `/?token=${token}`), /^HTTP\/1\.1 40[13] /);
        }
        assert.deepEqual(calls, [], name);
        const ok = name === "BasicHTTPAuth"
          ? { Authorization: basic("u:p") }
          : { Origin: "https://ok" };
        const raw = await within(5000, rawConnect(port, ok, { path: "/?token=vm1" }), "upgrade");
        raw.sock.destroy();
        assert.equal(raw.status, 101, raw.head);
        assert.deepEqual(calls, ["vm1"], name);
        calls.length = 0;
      } finally {
        await proxy.close();
      }
    }
  });
});

test("a refused upgrade never reaches the target", async () => {
  let connections = 0;
  const counting = await startEchoServer();
  counting.sockets.length = 0;
  const authPlugin = await loadAuthPlugin("BasicHTTPAuth", "u:p");
  const proxy = await startProxy(`127.0.0.1:${counting.port}`, { authPlugin });
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.addr.port}/`);
    ws.on("error", () => {});
    await within(5000, closed(ws));
    connections = counting.sockets.length;
    assert.equal(connections, 0);
  } finally {
    await proxy.close();
    await counting.close();
  }
});
